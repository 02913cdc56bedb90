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

// Progress is a snapshot of one demo run, read from the database.
type Progress struct {
	Signups          int64   `json:"signups"`
	JobsCompleted    int64   `json:"jobs_completed"`
	JobsRetrying     int64   `json:"jobs_retrying"`
	JobsDiscarded    int64   `json:"jobs_discarded"`
	JobsOpen         int64   `json:"jobs_open"` // not yet completed, discarded or cancelled
	Retries          int64   `json:"retries"`   // failed attempts so far
	EventsPending    int64   `json:"events_pending"`
	EventsPublished  int64   `json:"events_published"`
	EventsDead       int64   `json:"events_dead"`
	EventsConsumed   int64   `json:"events_consumed"`
	OutboxLagSeconds float64 `json:"outbox_lag_seconds"`
}

func readProgress(ctx context.Context, pool *pgxpool.Pool, since time.Time, queue string) (Progress, error) {
	var p Progress
	err := pool.QueryRow(ctx, progressSQL, since, queue).Scan(
		&p.Signups, &p.JobsCompleted, &p.JobsRetrying, &p.JobsDiscarded, &p.JobsOpen, &p.Retries,
		&p.EventsPending, &p.EventsPublished, &p.EventsDead, &p.EventsConsumed, &p.OutboxLagSeconds)
	return p, err
}

// settled reports whether every job and event of the run reached a final state.
func (p Progress) settled() bool {
	return p.JobsOpen == 0 && p.EventsPending == 0 && p.EventsConsumed >= p.EventsPublished
}

func (p Progress) line() string {
	return fmt.Sprintf("signups %d | jobs completed %d retrying %d discarded %d | events pending %d published %d consumed %d | outbox lag %.1fs",
		p.Signups, p.JobsCompleted, p.JobsRetrying, p.JobsDiscarded,
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
