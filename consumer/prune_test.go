package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInboxPruned: rows of the consumer's queue older than InboxRetention are
// deleted (more than one batch of them), recent rows and other queues' rows
// are kept.
func TestInboxPruned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	insert := func(queue string, n int, age time.Duration) {
		_, err := b.db.Pool.Exec(ctx, `
			INSERT INTO consumer_inbox (queue, message_id, processed_at)
			SELECT $1, gen_random_uuid(), now() - $3::interval FROM generate_series(1, $2)`, queue, n, age)
		require.NoError(t, err)
	}
	insert(b.queue, 2500, 8*24*time.Hour) // older than the default retention, 7 days
	insert(b.queue, 10, 6*24*time.Hour)
	insert("other.queue", 5, 30*24*time.Hour)
	count := func(queue string) (n int64) {
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM consumer_inbox WHERE queue = $1", queue).Scan(&n))
		return n
	}

	c := start(t, b.db.Pool, b.broker.URL, b.config())
	eventually(t, "old rows pruned", func() bool { return count(b.queue) == 10 })
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "message processed", func() bool { return c.Stats().Processed == 1 })
	c.stop(t)
	require.EqualValues(t, 11, count(b.queue), "recent rows kept")
	require.EqualValues(t, 5, count("other.queue"), "another queue's rows are its consumers' to prune")
	require.True(t, b.logs.Contains("rows=2500"), b.logs.String())
}
