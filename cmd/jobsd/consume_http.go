package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/logging"
	"github.com/jobsd/jobsd/internal/metrics"
	"github.com/jobsd/jobsd/internal/server"
)

// consumeHTTPShutdown bounds the stop of consume's HTTP server, after the
// consumer stopped: long enough for a scrape in flight.
const consumeHTTPShutdown = 5 * time.Second

func consumeHTTPFlag() cli.Flag {
	return &cli.StringFlag{Name: "http-addr", EnvVars: []string{"JOBSD_CONSUMER_HTTP_ADDR"}, Value: "-",
		Usage: "serve /metrics, /healthz and /readyz on host:port (a bare port listens on 127.0.0.1 only); - or empty disables"}
}

// consumeHTTP is consume's HTTP server: the consumer's metrics and probes.
// A nil *consumeHTTP is a disabled one: its methods do nothing.
type consumeHTTP struct {
	addr string
	reg  *prometheus.Registry
	http *metrics.HTTP
	srv  *http.Server
	done chan struct{}
}

// newConsumeHTTP checks --http-addr and returns the server to start, or nil
// when HTTP is disabled ("-" or empty).
func newConsumeHTTP(addr string) (*consumeHTTP, error) {
	switch addr {
	case "-", "":
		return nil, nil
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		addr = net.JoinHostPort("127.0.0.1", addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("--http-addr %q: want host:port, a port, or - to disable", addr)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	httpMetrics, err := metrics.NewHTTP(reg)
	if err != nil {
		return nil, err
	}
	return &consumeHTTP{addr: addr, reg: reg, http: httpMetrics}, nil
}

// registerer is where the consumer registers its collectors: nil (no
// metrics) when HTTP is disabled.
func (h *consumeHTTP) registerer() prometheus.Registerer {
	if h == nil {
		return nil
	}
	return h.reg
}

// start listens and serves until stop. /readyz answers 503 from the moment
// ctx is done (the consumer is draining).
func (h *consumeHTTP) start(ctx context.Context, cons *consumer.Consumer) error {
	if h == nil {
		return nil
	}
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another jobsd consume running? use --http-addr)", h.addr, err)
	}
	h.srv = &http.Server{
		Handler:           consumeHandler(ctx, h.reg, h.http, cons),
		ReadHeaderTimeout: server.ReadHeaderTimeoutDefault,
		ReadTimeout:       server.ReadTimeoutDefault,
		WriteTimeout:      server.WriteTimeoutDefault,
		IdleTimeout:       server.IdleTimeoutDefault,
		ErrorLog:          slog.NewLogLogger(httpLog().Handler(), slog.LevelWarn),
	}
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			httpLog().Error("consumer HTTP server failed; /metrics and the probes are gone", "err", err)
		}
	}()
	httpLog().Info("consumer HTTP listening", "addr", ln.Addr().String())
	return nil
}

// httpLog is the logger of consume's HTTP server.
func httpLog() *slog.Logger { return slog.Default().With(logging.KeyComponent, "http") }

// stop lets the requests in flight finish, within consumeHTTPShutdown.
func (h *consumeHTTP) stop() {
	if h == nil || h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumeHTTPShutdown)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		_ = h.srv.Close()
	}
	<-h.done
}

// consumeHandler serves:
//
//	GET /metrics  Prometheus: jobsd_consumer_*, jobsd_http_*, jobsd_build_info, Go
//	              and process; OpenMetrics when the scraper asks for it
//	GET /healthz  200 while the process runs
//	GET /readyz   200 when the consumer is connected to the broker and its
//	              last database transaction succeeded (or it needed none
//	              yet); 503 otherwise and once a stop began, the JSON body
//	              saying which
func consumeHandler(ctx context.Context, reg *prometheus.Registry, httpMetrics *metrics.HTTP, cons *consumer.Consumer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeHTTPJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		h := cons.Health()
		body := map[string]string{"status": "ready", "broker": "connected", "database": "ok"}
		if !h.Broker {
			body["broker"] = "disconnected"
		}
		if !h.Database {
			body["database"] = "failing"
		}
		status := http.StatusOK
		switch {
		case ctx.Err() != nil:
			body["status"], status = "stopping", http.StatusServiceUnavailable
		case !h.Ready():
			body["status"], status = "not ready", http.StatusServiceUnavailable
		}
		writeHTTPJSON(w, status, body)
	})
	return httpMetrics.Instrument(mux,
		metrics.Route{Pattern: "GET /metrics", OK: http.StatusOK},
		metrics.Route{Pattern: "GET /healthz", OK: http.StatusOK},
		metrics.Route{Pattern: "GET /readyz", OK: http.StatusOK})
}

func writeHTTPJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
