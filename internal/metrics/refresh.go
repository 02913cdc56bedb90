package metrics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	statsJobsSQL     = jsql.Statement("stats_jobs")
	metricsOutboxSQL = jsql.Statement("metrics_outbox")
)

// Refresh counts jobs, the job backlog and outbox events once and updates the
// gauges; it logs a crossing of the backlog warning threshold. Every
// state of every queue seen so far is reported, at 0 when it has no jobs, so
// that a drained state drops to 0 instead of keeping its last value.
func (m *Metrics) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := &pgx.Batch{}
	batch.Queue(statsJobsSQL)
	batch.Queue(metricsOutboxSQL)
	br := m.cfg.Pool.SendBatch(ctx, batch)
	defer br.Close()

	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("count jobs: %w", err)
	}
	counts := map[[2]string]float64{}
	for rows.Next() {
		var queue, state string
		var n int64
		if err := rows.Scan(&queue, &state, &n); err != nil {
			rows.Close()
			return fmt.Errorf("count jobs: %w", err)
		}
		counts[[2]string{queue, state}] = float64(n)
		m.queues[queue] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count jobs: %w", err)
	}

	var pending, dead int64
	var oldest float64
	if err := br.QueryRow().Scan(&pending, &oldest, &dead); err != nil {
		return fmt.Errorf("count outbox events: %w", err)
	}
	if err := br.Close(); err != nil { // frees the connection before the backlog's count
		return fmt.Errorf("count outbox events: %w", err)
	}

	for queue := range m.queues {
		for _, state := range rivertype.JobStates() {
			m.jobs.WithLabelValues(string(state), queue).Set(counts[[2]string{queue, string(state)}])
		}
	}
	m.outboxPending.Set(float64(pending))
	m.outboxOldest.Set(oldest)
	m.outboxDead.Set(float64(dead))
	return m.refreshBacklog(ctx)
}
