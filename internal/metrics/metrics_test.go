package metrics

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
)

func setup(t *testing.T) (*Metrics, *prometheus.Registry, *testdb.DB) {
	t.Helper()
	db := testdb.New(t)
	reg := prometheus.NewRegistry()
	m, err := New(Config{Pool: db.Pool, Registerer: reg, Interval: -1})
	require.NoError(t, err)
	return m, reg, db
}

func exec(t *testing.T, db *testdb.DB, sql string) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql)
	require.NoError(t, err)
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	m, reg, db := setup(t)
	ctx := context.Background()

	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 0.0, testutil.ToFloat64(m.outboxPending))
	require.Equal(t, 0, testutil.CollectAndCount(m.jobs), "no queue seen yet")

	exec(t, db, `INSERT INTO river_job (kind, queue, state, args, finalized_at) VALUES
		('a', 'default', 'available', '{}', NULL), ('a', 'default', 'available', '{}', NULL),
		('a', 'default', 'discarded', '{}', now()), ('b', 'mail', 'running', '{}', NULL)`)
	exec(t, db, `INSERT INTO outbox_event (topic, state, created_at) VALUES
		('t', 'pending', now() - interval '90 seconds'), ('t', 'pending', now()),
		('t', 'dead', now()), ('t', 'published', now())`)
	require.NoError(t, m.Refresh(ctx))

	require.Equal(t, 2.0, testutil.ToFloat64(m.jobs.WithLabelValues("available", "default")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobs.WithLabelValues("discarded", "default")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobs.WithLabelValues("running", "mail")))
	require.Equal(t, 16, testutil.CollectAndCount(m.jobs), "every state of both queues")
	require.Equal(t, 2.0, testutil.ToFloat64(m.outboxPending))
	require.Equal(t, 1.0, testutil.ToFloat64(m.outboxDead))
	require.GreaterOrEqual(t, testutil.ToFloat64(m.outboxOldest), 90.0)

	// Drained states drop to 0 rather than keeping their last value.
	exec(t, db, `DELETE FROM river_job WHERE queue = 'mail'`)
	exec(t, db, `DELETE FROM outbox_event WHERE state = 'pending'`)
	require.NoError(t, m.Refresh(ctx))
	require.Equal(t, 0.0, testutil.ToFloat64(m.jobs.WithLabelValues("running", "mail")))
	require.Equal(t, 0.0, testutil.ToFloat64(m.outboxPending))
	require.Equal(t, 0.0, testutil.ToFloat64(m.outboxOldest))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jobsd_outbox_dead Outbox events that exhausted their attempts (replay with `+"`jobsd outbox replay`"+`).
# TYPE jobsd_outbox_dead gauge
jobsd_outbox_dead 1
`), "jobsd_outbox_dead"))
}

func TestRunCountsPeriodically(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	m, err := New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), Interval: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	exec(t, db, `INSERT INTO outbox_event (topic) VALUES ('t'), ('t'), ('t')`)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(m.outboxPending) != 3 {
		require.True(t, time.Now().Before(deadline), "the periodic count never saw the events")
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestRefreshFailureIsCounted(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	m, err := New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), Interval: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	exec(t, db, `DROP TABLE outbox_event`)
	require.Error(t, m.Refresh(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(m.refreshErrors) != 1 {
		require.True(t, time.Now().Before(deadline), "the failed count was not counted")
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestObserveRiver(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	events := make(chan *river.Event, 10)
	job := func(kind string, state rivertype.JobState) *rivertype.JobRow {
		return &rivertype.JobRow{Kind: kind, State: state, Queue: "default"}
	}
	stats := &river.JobStatistics{RunDuration: 20 * time.Millisecond, QueueWaitDuration: 1500 * time.Millisecond}
	events <- &river.Event{Kind: river.EventKindJobCompleted, Job: job("create_profile", rivertype.JobStateCompleted), JobStats: stats}
	events <- &river.Event{Kind: river.EventKindJobCompleted, Job: job("create_profile", rivertype.JobStateCompleted), JobStats: stats}
	events <- &river.Event{Kind: river.EventKindJobFailed, Job: job("create_profile", rivertype.JobStateRetryable), JobStats: stats}
	events <- &river.Event{Kind: river.EventKindJobFailed, Job: job("send_email", rivertype.JobStateDiscarded), JobStats: stats}
	events <- &river.Event{Kind: river.EventKindJobCancelled, Job: job("send_email", rivertype.JobStateCancelled), JobStats: stats}
	events <- &river.Event{Kind: river.EventKindQueuePaused}
	close(events)
	m.ObserveRiver(events) // returns when the channel is closed, as when River stops

	require.Equal(t, 2.0, testutil.ToFloat64(m.jobCompleted.WithLabelValues("create_profile")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobFailed.WithLabelValues("create_profile")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobFailed.WithLabelValues("send_email")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobDiscarded.WithLabelValues("send_email")))
	require.Equal(t, 1, testutil.CollectAndCount(m.jobDiscarded), "a retried failure is not a discard")
	require.Equal(t, 1.0, testutil.ToFloat64(m.jobCancelled.WithLabelValues("send_email")))
	require.Equal(t, 4, testutil.CollectAndCount(m.jobDuration), "create_profile completed/failed, send_email failed/cancelled")
	require.Equal(t, 2, testutil.CollectAndCount(m.jobWait), "create_profile and send_email in queue default")
	var wait dto.Metric
	require.NoError(t, m.jobWait.WithLabelValues("send_email", "default").(prometheus.Histogram).Write(&wait))
	require.Equal(t, uint64(2), wait.GetHistogram().GetSampleCount())
	require.Equal(t, 3.0, wait.GetHistogram().GetSampleSum(), "1.5s each")
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Registerer: prometheus.NewRegistry()})
	require.ErrorContains(t, err, "missing Pool")
	db := testdb.New(t)
	_, err = New(Config{Pool: db.Pool})
	require.ErrorContains(t, err, "missing Registerer")
	_, err = New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), Interval: -2})
	require.ErrorContains(t, err, "negative")
	_, err = New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), BacklogWarn: BacklogCountCap + 1})
	require.ErrorContains(t, err, "backlog warning 1000001 is not between 1 and 1000000")
	_, err = New(Config{Pool: db.Pool, Registerer: prometheus.NewRegistry(), BacklogWarnAge: -2})
	require.ErrorContains(t, err, "backlog warning age -2ns is negative")
	reg := prometheus.NewRegistry()
	_, err = New(Config{Pool: db.Pool, Registerer: reg})
	require.NoError(t, err)
	_, err = New(Config{Pool: db.Pool, Registerer: reg})
	require.ErrorContains(t, err, "register", "a second set of the same metrics on one registry")
}

// TestKindsStartAtZero: the outcome counters of the configured kinds exist at
// 0 before any job ran, so that rate() works from the first scrape.
func TestKindsStartAtZero(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	reg := prometheus.NewRegistry()
	_, err := New(Config{Pool: db.Pool, Registerer: reg, Interval: -1, Kinds: []string{"create_profile"}, Queues: []string{"default"}})
	require.NoError(t, err)
	for _, name := range []string{"jobsd_jobs_completed_total", "jobsd_jobs_failed_total", "jobsd_jobs_discarded_total", "jobsd_jobs_cancelled_total"} {
		families, err := reg.Gather()
		require.NoError(t, err)
		var found bool
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			found = true
			require.Len(t, f.GetMetric(), 1, name)
			m := f.GetMetric()[0]
			require.Equal(t, "create_profile", m.GetLabel()[0].GetValue(), name)
			require.Zero(t, m.GetCounter().GetValue(), name)
		}
		require.True(t, found, "%s is exported at 0", name)
	}
	require.Equal(t, 1, testutil.CollectAndCount(reg, "jobsd_job_wait_seconds"), "the wait of each kind in each queue, empty")
}
