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
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/liveness"
	"github.com/jobsd/jobsd/internal/logging"
	"github.com/jobsd/jobsd/internal/metrics"
	"github.com/jobsd/jobsd/internal/telemetry"
	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/relay"
	"github.com/jobsd/jobsd/signup"
)

// Defaults of Config.
const (
	HTTPAddrDefault        = "127.0.0.1:8080"
	WorkersDefault         = 100
	ShutdownTimeoutDefault = 30 * time.Second
	ReadinessGraceDefault  = 5 * time.Second

	// HTTP server timeouts (http.Server's fields of the same names).
	ReadHeaderTimeoutDefault = 10 * time.Second
	ReadTimeoutDefault       = 15 * time.Second
	WriteTimeoutDefault      = 30 * time.Second
	IdleTimeoutDefault       = 2 * time.Minute
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

	// ShutdownTimeout bounds a stop, from ctx done to Run's return. Running
	// jobs get most of it to finish (all but a fifth of it, at most 5s) and
	// are then cancelled (River retries them later); the relay stops after
	// the workers. A component still running at the timeout is abandoned and
	// Run returns an error that names it. Default ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration

	// ReadinessGrace is how long, once a stop begins, HTTP keeps answering
	// while /readyz already answers 503 {"status": "stopping"}: a load
	// balancer that polls /readyz stops sending requests before connections
	// are refused. Requests in that window are served (a signup's jobs and
	// event wait for another process). It is part of ShutdownTimeout and at
	// most half of it; the workers stop at once, the relay after HTTP.
	// Default ReadinessGraceDefault; a negative value disables it. Without
	// HTTP there is no grace.
	ReadinessGrace time.Duration

	// ReadHeaderTimeout bounds reading a request's headers. Default
	// ReadHeaderTimeoutDefault; a negative value disables it.
	ReadHeaderTimeout time.Duration

	// ReadTimeout bounds reading a whole request, body included (a POST
	// /signup body is at most MaxSignupBody). A client that sends it slower
	// is cut off. Default ReadTimeoutDefault; a negative value disables it.
	ReadTimeout time.Duration

	// WriteTimeout bounds a request from the end of its headers to the end of
	// the response. River UI's API calls (job lists on a large table) are
	// the slowest responses. Default WriteTimeoutDefault; a negative value
	// disables it.
	WriteTimeout time.Duration

	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default IdleTimeoutDefault; a negative value disables it.
	IdleTimeout time.Duration

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

	// MaxBacklog, when positive, makes POST /signup answer 503 with a
	// Retry-After header while the job backlog (jobs waiting to run now; see
	// metrics.Backlog) is above it, instead of growing it further. The check
	// reads the last periodic count, so the limit is approximate: it lags by
	// up to MetricsInterval and several processes may each let a few more
	// signups in. Default 0: no limit. At most metrics.BacklogCountCap; it
	// needs the periodic count (MetricsInterval not -1).
	MaxBacklog int64

	// BacklogWarn and BacklogWarnAge are the job backlog and the age of its
	// oldest job from which a warning is logged, once per crossing (and an
	// Info line when it falls back below). Defaults
	// metrics.BacklogWarnDefault and metrics.BacklogWarnAgeDefault; -1
	// disables either.
	BacklogWarn    int64
	BacklogWarnAge time.Duration

	// UIUser and UIPassword, when set, protect River UI (/riverui/) and
	// /metrics with HTTP basic auth. Set both or neither. They are required
	// when HTTPAddr is not a loopback address. Default: unset (no auth).
	UIUser, UIPassword string

	// TracerProvider gets the spans of POST /signup (otelhttp), of the signup
	// transaction, of River's inserts and jobs (otelriver) and of the relay's
	// publishes, when tracing is on; see the README's Tracing section. The
	// relay's own Relay.TracerProvider, when set, wins. Default nil:
	// OpenTelemetry's global provider as it is when New runs; while it is a
	// no-op nothing is instrumented.
	TracerProvider trace.TracerProvider
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
	if c.ReadinessGrace == 0 {
		c.ReadinessGrace = ReadinessGraceDefault
	}
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&c.ReadHeaderTimeout, ReadHeaderTimeoutDefault},
		{&c.ReadTimeout, ReadTimeoutDefault},
		{&c.WriteTimeout, WriteTimeoutDefault},
		{&c.IdleTimeout, IdleTimeoutDefault},
	} {
		if *d.field == 0 {
			*d.field = d.def
		}
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
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown timeout must be positive, got %v", c.ShutdownTimeout)
	case c.MaxBacklog < 0 || c.MaxBacklog > metrics.BacklogCountCap:
		return fmt.Errorf("max backlog must be between 0 (no limit) and %d, got %d", metrics.BacklogCountCap, c.MaxBacklog)
	case c.MaxBacklog > 0 && c.MetricsInterval < 0:
		return errors.New("max backlog needs the periodic count (metrics interval -1 disables it)")
	case c.BacklogWarn < -1 || c.BacklogWarn > metrics.BacklogCountCap:
		return fmt.Errorf("backlog warning must be between 1 and %d jobs (-1 disables it), got %d", metrics.BacklogCountCap, c.BacklogWarn)
	case c.BacklogWarnAge < -1:
		return fmt.Errorf("backlog warning age must be positive (-1 disables it), got %v", c.BacklogWarnAge)
	}
	if err := c.validateOps(); err != nil {
		return err
	}
	return c.Jobs.Faults.Validate()
}

// Server is a running jobsd process.
type Server struct {
	cfg    Config
	log    *slog.Logger // cfg.Logger with component=serve
	pool   *pgxpool.Pool
	river  *river.Client[pgx.Tx]
	signup *signup.Service
	ops    ops          // metrics and River UI (ops.go)
	relay  *relay.Relay // nil with NoRelay

	stopping atomic.Bool // set when a stop begins: /readyz answers 503

	tracerProvider trace.TracerProvider
	tracing        bool // tracerProvider records spans
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
	tp, tracing := telemetry.Provider(cfg.TracerProvider)
	workers := river.NewWorkers()
	jobs.AddWorkers(workers, pool, cfg.Jobs)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		ID:                   workerID(),
		JobTimeout:           jobTimeout,
		Logger:               logging.River(cfg.Logger),
		MaxAttempts:          cfg.MaxAttempts,
		Middleware:           riverMiddleware(tp, tracing),
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
		log:    cfg.Logger.With(logging.KeyComponent, "serve"),
		pool:   pool,
		river:  client,
		signup: &signup.Service{Pool: pool, River: client, TracerProvider: tp},

		tracerProvider: tp,
		tracing:        tracing,
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
		if rc.TracerProvider == nil {
			rc.TracerProvider = tp
		}
		rc.PollOnly = rc.PollOnly || cfg.PollOnly
		if s.relay, err = relay.New(pool, cfg.AMQPURL, rc); err != nil {
			return nil, err
		}
		if err := s.registerBrokerBlocked(); err != nil {
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
// is done, then stops within ShutdownTimeout: /readyz answers 503 at once and
// HTTP stops taking requests after ReadinessGrace, running jobs get most of
// the timeout to finish and are cancelled after that (River retries them
// later), and the relay stops last (it marks what the
// broker confirmed and releases the rest of its rows). It returns nil after a
// clean stop, and an error naming the components it gave up waiting for when
// the timeout passed; those may still hold connections of the pool.
func (s *Server) Run(ctx context.Context) error {
	log := s.log
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
		httpSrv = s.httpServer()
		go func() { httpErr <- httpSrv.Serve(ln) }()
		log.Info("http listening", "addr", ln.Addr().String())
	}

	alive := s.startLiveness(ctx) // before River takes jobs: what it runs is rescued if it dies
	// River runs jobs with contexts derived from Start's: cancelling ctx there
	// would cancel running jobs at once. The stop below stops River instead,
	// giving running jobs time to finish.
	if err := s.river.Start(context.WithoutCancel(ctx)); err != nil {
		if httpSrv != nil {
			_ = httpSrv.Close()
		}
		if alive != nil {
			alive.Stop(context.WithoutCancel(ctx))
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
	if err := s.stop(ctx, httpSrv, stopRelay, relayDone, alive); err != nil {
		return err
	}
	log.Info("stopped")
	return runErr
}

// httpServer is the HTTP server with the configured timeouts.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.With(logging.KeyComponent, "http").Handler(), slog.LevelWarn),
	}
}

// jobsShare is how much of ShutdownTimeout running jobs get to finish: all
// but a fifth of it, at most 5s, which are left to cancel the jobs and stop
// the relay.
func jobsShare(timeout time.Duration) time.Duration {
	return timeout - min(timeout/5, 5*time.Second)
}

// readinessGrace is how long HTTP keeps answering after /readyz turned 503:
// ReadinessGrace, at most half of the shutdown timeout.
func readinessGrace(grace, timeout time.Duration) time.Duration {
	return max(0, min(grace, timeout/2))
}

// stop fails /readyz, stops the workers, HTTP after the readiness grace and
// then the relay, within ShutdownTimeout. It returns an error naming what did
// not stop in time.
func (s *Server) stop(ctx context.Context, httpSrv *http.Server, stopRelay func(), relayDone <-chan struct{}, alive *liveness.Process) error {
	log := s.log
	timeout := s.cfg.ShutdownTimeout
	s.stopping.Store(true)
	log.Info("shutting down", "timeout", timeout)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	jobsCtx, cancelJobs := context.WithTimeout(stopCtx, jobsShare(timeout))
	defer cancelJobs()

	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if httpSrv == nil {
			return
		}
		if grace := readinessGrace(s.cfg.ReadinessGrace, timeout); grace > 0 {
			log.Info("readyz answers 503; HTTP keeps serving for the readiness grace", "grace", grace)
			t := time.NewTimer(grace)
			select {
			case <-t.C:
			case <-stopCtx.Done():
				t.Stop()
			}
		}
		if err := httpSrv.Shutdown(stopCtx); err != nil {
			_ = httpSrv.Close() // cut the requests still running
		}
	}()

	riverDone := make(chan struct{}) // closed once River stopped, never if it did not
	go func() {
		err := s.river.Stop(jobsCtx) // fails only when jobsCtx is done first
		if err != nil && stopCtx.Err() == nil {
			log.Warn("jobs did not finish in time; cancelling them (River retries them later)", "err", err)
			err = s.river.StopAndCancel(stopCtx)
		}
		if err == nil {
			close(riverDone)
		}
	}()

	var stuck []string
	wait := func(name string, done <-chan struct{}) {
		select {
		case <-done:
		case <-stopCtx.Done():
			select {
			case <-done:
			default:
				log.Error("did not stop within the shutdown timeout; giving up on it", "stuck", name, "timeout", timeout)
				stuck = append(stuck, name)
			}
		}
	}
	wait("workers (River)", riverDone)
	if alive != nil {
		select {
		case <-riverDone:
			alive.Stop(stopCtx)
		default:
			alive.Abandon() // others rescue the jobs River did not stop
		}
	}
	wait("http", httpDone)
	stopRelay() // after the workers and HTTP: events they committed still go out
	wait("relay", relayDone)
	if stuck != nil {
		return fmt.Errorf("%w (%v): %s did not stop", ErrShutdownTimeout, timeout, strings.Join(stuck, ", "))
	}
	return nil
}

// ErrShutdownTimeout is returned by Run when a component did not stop within
// ShutdownTimeout.
var ErrShutdownTimeout = errors.New("shutdown timeout exceeded")
