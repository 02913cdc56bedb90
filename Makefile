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
test: services ## bring services up, then run every test with -race
	$(GO) test -race -count=1 -timeout 15m ./...

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: demo
demo: services build ## bring services up, migrate, and run the demo
	$(BIN) migrate
	$(BIN) serve --fail-rate 0.2
