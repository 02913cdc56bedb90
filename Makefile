# jobsd — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/jobsd

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z/]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: services
services: ## make sure Postgres and RabbitMQ are reachable (starts or installs them when possible)
	@scripts/services.sh

.PHONY: build
build: ## build bin/jobsd
	$(GO) build -o $(BIN) ./cmd/jobsd

.PHONY: test
test: services ## bring services up, then run every test with -race, then a short fuzz run of every fuzz target
	$(GO) test -race -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$${FUZZTIME:-5s}

.PHONY: fuzz
fuzz: services ## run every fuzz target for FUZZTIME each (default 10s); seeds live in testdata/
	GO=$(GO) FUZZTIME=$${FUZZTIME:-10s} scripts/fuzz.sh

.PHONY: test/ui
test/ui: services ## check River UI in headless Chromium (installs Debian's chromium if missing)
	@command -v chromium >/dev/null || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@mkdir -p bin
	JOBSD_TEST_UI=1 JOBSD_UI_SCREENSHOT=$${JOBSD_UI_SCREENSHOT:-$(CURDIR)/bin/riverui-jobs.png} \
		$(GO) test -race -count=1 -run TestRiverUIInChromium -v ./cmd/jobsd

.PHONY: test/queries
test/queries: services ## run the operator queries (sql/queries) against fixtures and compare with testdata/queries/*.golden (UPDATE=1 rewrites them)
	$(GO) test -count=1 -run 'TestQueries|TestUserStory' ./sql $(if $(UPDATE),-update)

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: demo
demo: services build ## bring services up, then the live demo (creates and migrates the database; Ctrl-C stops)
	$(BIN) demo

.PHONY: chaos
chaos: build ## the fault matrix on its own Postgres and 3-node RabbitMQ cluster (SCENARIOS="a b" some, CHAOS_DURATION=60s longer; not in make test)
	$(GO) build -o bin/chaos ./cmd/chaos
	bin/chaos -jobsd $(BIN) -scenarios "$(SCENARIOS)" $(if $(CHAOS_DURATION),-duration $(CHAOS_DURATION))

.PHONY: bench
bench: services ## run the go benchmarks (relay vs raw publish, backlog, scale, latency; consumer vs raw consumer)
	$(GO) test -run '^$$' -bench 'RelayVsRawPublish' -benchtime 20000x ./relay/
	$(GO) test -run '^$$' -bench 'RelayBacklog|RelayScale' -benchtime 1x ./relay/
	$(GO) test -run '^$$' -bench 'RelayLatency' -benchtime 1x ./relay/
	JOBSD_BENCH_MESSAGES=20000 $(GO) test -run '^$$' -bench 'BenchmarkConsumer/defaults' -benchtime 1x ./consumer/
