package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	progressSQL = jsql.Statement("demo_progress")
	latencySQL  = jsql.Statement("demo_latency")
	startSQL    = jsql.Statement("demo_start")
)

// Progress is a snapshot of one demo run, read from the database in one
// statement. The job states partition the run's jobs: JobsCompleted +
// JobsRunning + JobsRetrying + JobsWaiting + JobsDiscarded + JobsCancelled =
// Jobs = 3 × Signups.
type Progress struct {
	Signups          int64   `json:"signups"`
	Jobs             int64   `json:"jobs"`
	JobsCompleted    int64   `json:"jobs_completed"`
	JobsRunning      int64   `json:"jobs_running"`
	JobsRetrying     int64   `json:"jobs_retrying"` // failed, waiting for the backoff (River's retryable)
	JobsWaiting      int64   `json:"jobs_waiting"`  // available, scheduled or pending
	JobsDiscarded    int64   `json:"jobs_discarded"`
	JobsCancelled    int64   `json:"jobs_cancelled"`
	Retries          int64   `json:"retries"`  // attempts beyond the first, started so far
	Failures         int64   `json:"failures"` // failed attempts (errors recorded)
	EventsPending    int64   `json:"events_pending"`
	EventsPublished  int64   `json:"events_published"`
	EventsDead       int64   `json:"events_dead"`
	EventsConsumed   int64   `json:"events_consumed"`
	OutboxLagSeconds float64 `json:"outbox_lag_seconds"`
}

func readProgress(ctx context.Context, pool *pgxpool.Pool, since time.Time, queue string) (Progress, error) {
	var p Progress
	err := pool.QueryRow(ctx, progressSQL, since, queue).Scan(
		&p.Signups, &p.Jobs, &p.JobsCompleted, &p.JobsRunning, &p.JobsRetrying, &p.JobsWaiting,
		&p.JobsDiscarded, &p.JobsCancelled, &p.Retries, &p.Failures,
		&p.EventsPending, &p.EventsPublished, &p.EventsDead, &p.EventsConsumed, &p.OutboxLagSeconds)
	return p, err
}

// JobsOpen is the jobs not yet completed, discarded or cancelled.
func (p Progress) JobsOpen() int64 { return p.JobsRunning + p.JobsRetrying + p.JobsWaiting }

// settled reports whether every job and event of the run reached a final state.
func (p Progress) settled() bool {
	return p.JobsOpen() == 0 && p.EventsPending == 0 && p.EventsConsumed >= p.EventsPublished
}

func (p Progress) line() string {
	cancelled := ""
	if p.JobsCancelled > 0 {
		cancelled = fmt.Sprintf(" cancelled %d", p.JobsCancelled)
	}
	return fmt.Sprintf("signups %d | jobs completed %d running %d retrying %d waiting %d discarded %d%s, retries %d"+
		" | events pending %d published %d consumed %d | outbox lag %.1fs",
		p.Signups, p.JobsCompleted, p.JobsRunning, p.JobsRetrying, p.JobsWaiting, p.JobsDiscarded, cancelled, p.Retries,
		p.EventsPending, p.EventsPublished, p.EventsConsumed, p.OutboxLagSeconds)
}

// Latency holds the run's latency percentiles.
type Latency struct {
	UsersDone      int64   `json:"users_done"`
	ProfilesP50    float64 `json:"signup_to_profiles_p50_seconds"`
	ProfilesP99    float64 `json:"signup_to_profiles_p99_seconds"`
	EventsConsumed int64   `json:"events_consumed"`
	ConsumedP50    float64 `json:"commit_to_consumed_p50_seconds"`
	ConsumedP99    float64 `json:"commit_to_consumed_p99_seconds"`
}

func readLatency(ctx context.Context, pool *pgxpool.Pool, since time.Time, queue string) (Latency, error) {
	var l Latency
	err := pool.QueryRow(ctx, latencySQL, since, queue).Scan(
		&l.UsersDone, &l.ProfilesP50, &l.ProfilesP99, &l.EventsConsumed, &l.ConsumedP50, &l.ConsumedP99)
	return l, err
}
