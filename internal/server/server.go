// Package server runs what `jobsd serve` runs: River workers for the critical
// jobs, the outbox relay, and the HTTP endpoints (signup, health, readiness).
// The CLI and the demo both start it; it never reads flags or the environment.
//
// It may import every jobsd package except the CLI.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/relay"
	"github.com/jobsd/jobsd/signup"
)

// Defaults of Config.
const (
	HTTPAddrDefault        = "127.0.0.1:8080"
	WorkersDefault         = 100
	ShutdownTimeoutDefault = 30 * time.Second
)

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// HTTPAddr is where the HTTP endpoints listen. Default HTTPAddrDefault.
	// "-" disables HTTP.
	HTTPAddr string

	// Workers is how many jobs run at once in this process. Default
	// WorkersDefault. River fetches at most this many jobs per fetch and
	// fetches at most every 100 ms, so it also bounds a process's throughput
	// (about 10 x Workers jobs/s).
	Workers int

	// MaxAttempts is how often a job inserted by this process (POST /signup) is
	// tried before it is discarded. Default River's 25.
	MaxAttempts int

	// JobTimeout bounds one attempt of a job. Default River's (1 minute).
	JobTimeout time.Duration

	// RescueAfter is how long a job may stay running before River's rescuer
	// considers its worker dead and makes it retryable. Default River's (1 hour);
	// it must not be shorter than JobTimeout.
	RescueAfter time.Duration

	// RetryPolicy decides when a failed job runs again. Default River's
	// (attempt^4 seconds, with jitter).
	RetryPolicy river.ClientRetryPolicy

	// PollOnly makes River poll instead of using LISTEN/NOTIFY (for PgBouncer
	// in transaction mode). Default false.
	PollOnly bool

	// ShutdownTimeout is how long a stop waits for running jobs before
	// cancelling them. Default ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration

	// Jobs configures the workers (fault injection).
	Jobs jobs.Config

	// Relay configures the outbox relay; see relay.Config for its defaults.
	// PollOnly above also turns the relay's LISTEN off. Its Logger defaults
	// to Logger.
	Relay relay.Config

	// AMQPURL is the RabbitMQ the relay publishes to. Required unless NoRelay.
	AMQPURL string

	// NoRelay runs no relay in this process (another process relays).
	// Default false.
	NoRelay bool

	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger

	// Registry holds the metrics served on GET /metrics. jobsd's own
	// collectors (internal/metrics) register on it in New; the relay and the
	// consumer register theirs on it too. Default: a new registry with the Go
	// and process collectors (never the global one).
	Registry *prometheus.Registry

	// MetricsInterval is how often the jobsd_jobs and jobsd_outbox_* gauges are
	// recounted. Default metrics.IntervalDefault; -1 disables the count (the
	// serve flag accepts only positive values).
	MetricsInterval time.Duration

	// UIUser and UIPassword, when set, protect River UI (/riverui/) and
	// /metrics with HTTP basic auth. Set both or neither. They are required
	// when HTTPAddr is not a loopback address. Default: unset (no auth).
	UIUser, UIPassword string
}

func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = HTTPAddrDefault
	}
	if c.Workers == 0 {
		c.Workers = WorkersDefault
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = newRegistry()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("workers must be at least 1, got %d", c.Workers)
	case c.MaxAttempts < 0:
		return fmt.Errorf("max attempts must be at least 1, got %d", c.MaxAttempts)
	case c.RescueAfter < 0 || c.JobTimeout < 0:
		return errors.New("rescue-after and job-timeout must not be negative")
	case c.RescueAfter > 0 && c.JobTimeout > c.RescueAfter:
		return fmt.Errorf("rescue-after (%v) must not be shorter than job-timeout (%v)", c.RescueAfter, c.JobTimeout)
	}
	if err := c.validateOps(); err != nil {
		return err
	}
	return c.Jobs.Faults.Validate()
}

// Server is a running jobsd process.
type Server struct {
	cfg    Config
	pool   *pgxpool.Pool
	river  *river.Client[pgx.Tx]
	signup *signup.Service
	ops    ops          // metrics and River UI (ops.go)
	relay  *relay.Relay // nil with NoRelay
}

// New builds a Server on pool. It starts nothing; Run does.
func New(pool *pgxpool.Pool, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	jobTimeout := cfg.JobTimeout
	if cfg.RescueAfter > 0 && jobTimeout == 0 && cfg.RescueAfter < river.JobTimeoutDefault {
		jobTimeout = cfg.RescueAfter // keep River's rule rescue-after >= job timeout
	}
	workers := river.NewWorkers()
	jobs.AddWorkers(workers, pool, cfg.Jobs)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		JobTimeout:           jobTimeout,
		Logger:               cfg.Logger,
		MaxAttempts:          cfg.MaxAttempts,
		PollOnly:             cfg.PollOnly,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		RescueStuckJobsAfter: cfg.RescueAfter,
		RetryPolicy:          cfg.RetryPolicy,
		Workers:              workers,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		pool:   pool,
		river:  client,
		signup: &signup.Service{Pool: pool, River: client},
	}
	if err := s.initOps(); err != nil {
		return nil, err
	}
	if !cfg.NoRelay {
		rc := cfg.Relay
		if rc.Logger == nil {
			rc.Logger = cfg.Logger
		}
		if rc.Registerer == nil {
			rc.Registerer = cfg.Registry
		}
		rc.PollOnly = rc.PollOnly || cfg.PollOnly
		if s.relay, err = relay.New(pool, cfg.AMQPURL, rc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// River returns the server's River client.
func (s *Server) River() *river.Client[pgx.Tx] { return s.river }

// Relay returns the server's outbox relay, or nil with NoRelay.
func (s *Server) Relay() *relay.Relay { return s.relay }

// Run starts the workers, the relay and the HTTP server and blocks until ctx
// is done, then drains: HTTP stops taking requests, running jobs get
// ShutdownTimeout to finish and are cancelled after that, and the relay stops
// last (it marks what the broker confirmed and releases the rest of its rows).
// It returns nil after a clean drain.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Logger
	opsCtx, stopOps := context.WithCancel(ctx)
	defer stopOps()
	if err := s.startOps(opsCtx); err != nil {
		return err
	}
	var httpSrv *http.Server
	httpErr := make(chan error, 1)
	if s.cfg.HTTPAddr != "-" {
		ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (is another jobsd serve running? use --http-addr)", s.cfg.HTTPAddr, err)
		}
		httpSrv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { httpErr <- httpSrv.Serve(ln) }()
		log.Info("http listening", "addr", ln.Addr().String())
	}

	// River runs jobs with contexts derived from Start's: cancelling ctx there
	// would cancel running jobs at once. The drain below stops River instead,
	// giving running jobs ShutdownTimeout to finish.
	if err := s.river.Start(context.WithoutCancel(ctx)); err != nil {
		if httpSrv != nil {
			_ = httpSrv.Close()
		}
		return fmt.Errorf("start river: %w", err)
	}
	s.startActivityLog()
	s.observeJobs()
	log.Info("workers started", "workers", s.cfg.Workers)

	// The relay outlives ctx until the workers stopped, so that events
	// committed during the drain still go out.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan struct{})
	if s.relay != nil {
		go func() {
			defer close(relayDone)
			if err := s.relay.Run(relayCtx); err != nil {
				log.Error("relay failed", "err", err)
			}
		}()
	} else {
		close(relayDone)
		log.Info("relay disabled (--no-relay)")
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		log.Error("http server failed", "err", err)
		runErr = fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(stopCtx)
	}
	if err := s.river.Stop(stopCtx); err != nil {
		log.Warn("jobs did not finish in time; cancelling them (River retries them later)", "err", err)
		hardCtx, hardCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer hardCancel()
		if err := s.river.StopAndCancel(hardCtx); err != nil {
			stopRelay()
			<-relayDone
			return fmt.Errorf("stop workers: %w", err)
		}
	}
	stopRelay()
	<-relayDone
	log.Info("stopped")
	return runErr
}
