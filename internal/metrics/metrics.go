// Package metrics defines jobsd's Prometheus metrics and keeps them current:
// gauges of jobs by state and queue, of the job backlog (jobs waiting to run
// and the age of the oldest) and of the outbox's backlog, refreshed by a
// periodic count (one cheap GROUP BY per interval), and job durations and
// outcomes by kind and their wait to start, taken from River's event
// subscription; the HTTP servers' request metrics (InstrumentHTTP) and the
// /metrics handler (Handler).
//
// Everything registers on a caller-provided prometheus.Registerer, never on
// the global registry, so that several servers (and tests) live side by side.
// It may import pgx, River, client_golang and jobsd's sql package.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// IntervalDefault is how often the gauges are refreshed by default.
const IntervalDefault = 5 * time.Second

// Config configures Metrics.
type Config struct {
	// Pool is the database the counts are taken from. Required.
	Pool *pgxpool.Pool

	// Registerer receives the collectors. Required; use a dedicated
	// prometheus.NewRegistry rather than the global one.
	Registerer prometheus.Registerer

	// Interval between two counts of river_job and outbox_event. Default
	// IntervalDefault; -1 disables the periodic count (Refresh still works).
	Interval time.Duration

	// Logger receives count failures and the backlog warnings. Default
	// slog.Default().
	Logger *slog.Logger

	// BacklogWarn is the job backlog (jobs waiting to run now) from which a
	// warning is logged, once per crossing, with an Info line when it falls
	// back below. Default BacklogWarnDefault; -1 disables it. At most
	// BacklogCountCap.
	BacklogWarn int64

	// BacklogWarnAge is the age of the oldest waiting job from which the same
	// warning is logged. Default BacklogWarnAgeDefault; -1 disables it.
	BacklogWarnAge time.Duration

	// Kinds are the job kinds whose outcome counters (jobsd_jobs_*_total)
	// exist at 0 from New on, so that rate() works before their first
	// outcome. Other kinds appear when they first complete, fail or are
	// cancelled. Default none.
	Kinds []string

	// Queues are the queues whose wait histogram (jobsd_job_wait_seconds)
	// exists for each of Kinds from New on. Default none.
	Queues []string
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = IntervalDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("component", "metrics")
	if c.BacklogWarn == 0 {
		c.BacklogWarn = BacklogWarnDefault
	}
	if c.BacklogWarnAge == 0 {
		c.BacklogWarnAge = BacklogWarnAgeDefault
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("metrics: missing Pool")
	case c.Registerer == nil:
		return errors.New("metrics: missing Registerer (use prometheus.NewRegistry())")
	case c.Interval < -1:
		return fmt.Errorf("metrics: interval %v is negative (use -1 to disable the periodic count)", c.Interval)
	case c.BacklogWarn < -1 || c.BacklogWarn > BacklogCountCap:
		return fmt.Errorf("metrics: backlog warning %d is not between 1 and %d (use -1 to disable it)", c.BacklogWarn, BacklogCountCap)
	case c.BacklogWarnAge < -1:
		return fmt.Errorf("metrics: backlog warning age %v is negative (use -1 to disable it)", c.BacklogWarnAge)
	}
	return nil
}

// Metrics holds jobsd's collectors.
type Metrics struct {
	cfg Config

	jobs          *prometheus.GaugeVec
	outboxPending prometheus.Gauge
	outboxOldest  prometheus.Gauge
	outboxDead    prometheus.Gauge
	backlogJobs   prometheus.Gauge
	backlogOldest prometheus.Gauge
	refreshErrors prometheus.Counter

	jobDuration  *prometheus.HistogramVec
	jobWait      *prometheus.HistogramVec
	jobCompleted *prometheus.CounterVec
	jobFailed    *prometheus.CounterVec
	jobDiscarded *prometheus.CounterVec
	jobCancelled *prometheus.CounterVec

	mu     sync.Mutex      // serialises Refresh
	queues map[string]bool // queues seen so far; their absent states are reported as 0

	backlogWarned bool // the last count was over a warning threshold (guarded by mu)

	backlogMu sync.RWMutex // guards backlog, read by Backlog on hot paths
	backlog   Backlog
}

// New creates the collectors and registers them on cfg.Registerer.
func New(cfg Config) (*Metrics, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Metrics{
		cfg: cfg,
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jobsd_jobs",
			Help: "Jobs in river_job by state and queue, from the periodic count.",
		}, []string{"state", "queue"}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_outbox_pending",
			Help: "Outbox events waiting to be published, from the periodic count.",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest pending outbox event (0 when none is pending): the relay's lag.",
		}),
		outboxDead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_outbox_dead",
			Help: "Outbox events that exhausted their attempts (replay with `jobsd outbox replay`).",
		}),
		backlogJobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_jobs_backlog",
			Help: "Jobs waiting to run now (available, plus retryable and scheduled whose time has come), from the periodic count; capped at 1e6.",
		}),
		backlogOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_jobs_backlog_oldest_age_seconds",
			Help: "How long the oldest job waiting to run has waited since its scheduled_at (0 when none waits): the workers' lag.",
		}),
		refreshErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobsd_metrics_refresh_errors_total",
			Help: "Periodic counts that failed (the gauges keep their previous values).",
		}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobsd_job_duration_seconds",
			Help:    "Time jobs spent in their worker, by kind and outcome (completed, failed, cancelled).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind", "outcome"}),
		jobWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jobsd_job_wait_seconds",
			Help: "Time jobs waited to start, from their scheduled_at (insert, or the end of a retry's backoff) " +
				"to the attempt, by kind and queue, for every attempt this process worked.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900},
		}, []string{"kind", "queue"}),
		jobCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_jobs_completed_total",
			Help: "Job attempts that succeeded, by kind.",
		}, []string{"kind"}),
		jobFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_jobs_failed_total",
			Help: "Job attempts that returned an error or panicked, by kind (retried or discarded).",
		}, []string{"kind"}),
		jobDiscarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_jobs_discarded_total",
			Help: "Jobs that failed their last attempt and were discarded, by kind.",
		}, []string{"kind"}),
		jobCancelled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_jobs_cancelled_total",
			Help: "Jobs cancelled while or after running in this process, by kind.",
		}, []string{"kind"}),
		queues: map[string]bool{},
	}
	for _, kind := range cfg.Kinds {
		for _, vec := range []*prometheus.CounterVec{m.jobCompleted, m.jobFailed, m.jobDiscarded, m.jobCancelled} {
			vec.WithLabelValues(kind)
		}
		for _, queue := range cfg.Queues {
			m.jobWait.WithLabelValues(kind, queue)
		}
	}
	for _, c := range []prometheus.Collector{
		m.jobs, m.outboxPending, m.outboxOldest, m.outboxDead, m.backlogJobs, m.backlogOldest, m.refreshErrors,
		m.jobDuration, m.jobWait, m.jobCompleted, m.jobFailed, m.jobDiscarded, m.jobCancelled,
	} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Run refreshes the gauges at once and then every Interval until ctx is done.
// A failed count is logged and counted; the next interval tries again.
func (m *Metrics) Run(ctx context.Context) {
	if m.cfg.Interval < 0 {
		return
	}
	ticker := time.NewTicker(m.cfg.Interval)
	defer ticker.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.refreshErrors.Inc()
			m.cfg.Logger.Warn("count failed; gauges keep their previous values", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
