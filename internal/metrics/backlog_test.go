package metrics

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/internal/testlog"
)

// TestRefreshBacklog: the backlog counts the jobs waiting to run now, in
// every queue and priority, and nothing else; its age is the oldest one's
// wait since scheduled_at.
func TestRefreshBacklog(t *testing.T) {
	t.Parallel()
	m, reg, db := setup(t)
	ctx := context.Background()

	require.False(t, m.Backlog().Known(), "no count yet")
	require.NoError(t, m.Refresh(ctx))
	require.True(t, m.Backlog().Known())
	require.Equal(t, int64(0), m.Backlog().Jobs)
	require.Equal(t, 0.0, testutil.ToFloat64(m.backlogOldest))

	exec(t, db, `INSERT INTO river_job (kind, queue, priority, state, args, scheduled_at, finalized_at) VALUES
		('a', 'default', 1, 'available', '{}', now() - interval '10 seconds', NULL),
		('a', 'default', 1, 'available', '{}', now(), NULL),
		('a', 'default', 2, 'available', '{}', now() - interval '5 minutes', NULL),
		('a', 'mail', 1, 'retryable', '{}', now() - interval '1 second', NULL),
		('a', 'mail', 1, 'retryable', '{}', now() + interval '1 hour', NULL),
		('a', 'default', 1, 'scheduled', '{}', now() - interval '2 seconds', NULL),
		('a', 'default', 1, 'scheduled', '{}', now() + interval '1 hour', NULL),
		('a', 'default', 1, 'running', '{}', now() - interval '1 hour', NULL),
		('a', 'default', 1, 'completed', '{}', now() - interval '1 hour', now()),
		('a', 'default', 1, 'discarded', '{}', now() - interval '1 hour', now())`)
	require.NoError(t, m.Refresh(ctx))
	b := m.Backlog()
	require.Equal(t, int64(5), b.Jobs, "3 available, 1 due retryable, 1 due scheduled")
	require.GreaterOrEqual(t, b.OldestAge, 5*time.Minute)
	require.Less(t, b.OldestAge, time.Hour, "a running job is not waiting")
	require.Equal(t, 5.0, testutil.ToFloat64(m.backlogJobs))
	require.InDelta(t, b.OldestAge.Seconds(), testutil.ToFloat64(m.backlogOldest), 0.001)

	exec(t, db, `DELETE FROM river_job WHERE state IN ('available', 'retryable', 'scheduled')`)
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, int64(0), m.Backlog().Jobs)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jobsd_jobs_backlog_oldest_age_seconds How long the oldest job waiting to run has waited since its scheduled_at (0 when none waits): the workers' lag.
# TYPE jobsd_jobs_backlog_oldest_age_seconds gauge
jobsd_jobs_backlog_oldest_age_seconds 0
`), "jobsd_jobs_backlog_oldest_age_seconds"))
}

// TestBacklogWarning: one Warn when the backlog crosses the threshold, none
// while it stays above, one Info when it falls back below.
func TestBacklogWarning(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var logs testlog.Buffer
	m, err := New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), Interval: -1,
		BacklogWarn: 3, BacklogWarnAge: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	require.NoError(t, err)
	ctx := context.Background()
	warnings := func() int { return strings.Count(logs.String(), "job backlog above the warning threshold") }
	recoveries := func() int { return strings.Count(logs.String(), "job backlog back below the warning threshold") }

	exec(t, db, `INSERT INTO river_job (kind, queue, state, args) VALUES
		('a', 'other', 'available', '{}'), ('a', 'other', 'available', '{}')`)
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 0, warnings(), "2 jobs are below the threshold of 3")

	exec(t, db, `INSERT INTO river_job (kind, queue, state, args) VALUES ('a', 'other', 'available', '{}')`)
	require.NoError(t, m.Refresh(ctx))
	require.NoError(t, m.Refresh(ctx))
	exec(t, db, `INSERT INTO river_job (kind, queue, state, args) VALUES ('a', 'other', 'available', '{}')`)
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 1, warnings(), "once per crossing, not at every refresh:\n%s", logs.String())
	require.Contains(t, logs.String(), "level=WARN")
	require.Equal(t, 0, recoveries())

	exec(t, db, `DELETE FROM river_job`)
	require.NoError(t, m.Refresh(ctx))
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 1, recoveries(), logs.String())

	exec(t, db, `INSERT INTO river_job (kind, queue, state, args) VALUES
		('a', 'other', 'available', '{}'), ('a', 'other', 'available', '{}'), ('a', 'other', 'available', '{}')`)
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 2, warnings(), "a second crossing warns again")
}

// TestBacklogWarningByAge: an old job warns even when the backlog is small.
func TestBacklogWarningByAge(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var logs testlog.Buffer
	m, err := New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), Interval: -1,
		BacklogWarnAge: time.Minute,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	exec(t, db, `INSERT INTO river_job (kind, queue, state, args, scheduled_at) VALUES
		('a', 'other', 'available', '{}', now() - interval '2 minutes')`)
	require.NoError(t, m.Refresh(context.Background()))
	require.Contains(t, logs.String(), "job backlog above the warning threshold")
}
