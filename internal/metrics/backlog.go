package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var metricsBacklogSQL = jsql.Statement("metrics_backlog")

// BacklogCountCap bounds the count of the job backlog: a backlog of at least
// this many jobs is reported as this many, so that a runaway backlog keeps
// the count cheap. A limit or threshold on the backlog must stay below it.
const BacklogCountCap = 1_000_000

// Defaults of the backlog warning (Config.BacklogWarn, BacklogWarnAge).
const (
	BacklogWarnDefault    = 10_000
	BacklogWarnAgeDefault = time.Minute
)

// Backlog is the job backlog as of the last refresh: the jobs waiting to run
// now (available, plus retryable and scheduled whose time has come) and how
// long the oldest of them has waited since its scheduled_at.
type Backlog struct {
	Jobs      int64         // capped at BacklogCountCap
	OldestAge time.Duration // 0 when there is no backlog
	At        time.Time     // when it was counted; zero before the first count
}

// Known reports whether the backlog was counted at least once.
func (b Backlog) Known() bool { return !b.At.IsZero() }

// Backlog returns the job backlog of the last successful refresh (the zero
// Backlog before the first). It runs no query: callers on a hot path (a
// signup handler refusing work above a limit) read it as often as they like.
func (m *Metrics) Backlog() Backlog {
	m.backlogMu.RLock()
	defer m.backlogMu.RUnlock()
	return m.backlog
}

// refreshBacklog counts the backlog, updates its gauges and logs a crossing
// of the warning threshold. The count runs in its own read-only transaction
// with JIT off: its plan's cost estimate is high enough to trigger a JIT
// compilation that takes longer than the query itself.
func (m *Metrics) refreshBacklog(ctx context.Context) error {
	var jobs int64
	var oldest float64
	err := pgx.BeginTxFunc(ctx, m.cfg.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, metricsBacklogSQL, BacklogCountCap).Scan(&jobs, &oldest)
	})
	if err != nil {
		return fmt.Errorf("count the job backlog: %w", err)
	}
	b := Backlog{Jobs: jobs, OldestAge: time.Duration(oldest * float64(time.Second)), At: time.Now()}
	m.backlogJobs.Set(float64(jobs))
	m.backlogOldest.Set(oldest)
	m.backlogMu.Lock()
	m.backlog = b
	m.backlogMu.Unlock()
	m.warnBacklog(b)
	return nil
}

// overBacklogWarn reports whether b crosses either warning threshold.
func (m *Metrics) overBacklogWarn(b Backlog) bool {
	return (m.cfg.BacklogWarn > 0 && b.Jobs >= m.cfg.BacklogWarn) ||
		(m.cfg.BacklogWarnAge > 0 && b.OldestAge >= m.cfg.BacklogWarnAge)
}

// warnBacklog logs once when the backlog crosses the warning threshold and
// once when it falls back below, not at every refresh. Refresh holds m.mu.
func (m *Metrics) warnBacklog(b Backlog) {
	over := m.overBacklogWarn(b)
	switch {
	case over && !m.backlogWarned:
		m.cfg.Logger.Warn("job backlog above the warning threshold: jobs wait longer than usual to run "+
			"(workers too few or too slow for the load; see docs/operations.md)",
			"backlog", b.Jobs, "oldest_age", b.OldestAge.Round(time.Second),
			"warn_jobs", m.cfg.BacklogWarn, "warn_age", m.cfg.BacklogWarnAge)
	case !over && m.backlogWarned:
		m.cfg.Logger.Info("job backlog back below the warning threshold",
			"backlog", b.Jobs, "oldest_age", b.OldestAge.Round(time.Second))
	}
	m.backlogWarned = over
}
