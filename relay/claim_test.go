package relay

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
)

// claimOnce runs one claim transaction of a relay with id, as the claimer does.
func claimOnce(t *testing.T, db *testdb.DB, id string, batch int) claimResult {
	t.Helper()
	r, err := New(db.Pool, "amqp://guest:guest@127.0.0.1:5672/", Config{ID: id, BatchSize: batch, Logger: testLogger()})
	require.NoError(t, err)
	u := newRun(context.Background(), r)
	defer u.close()
	c, err := u.claimTx(context.Background(), time.Now(), nil)
	require.NoError(t, err)
	return c
}

func claimedIDs(c claimResult) []int64 {
	var ids []int64
	for _, rw := range c.rows {
		ids = append(ids, rw.ID)
	}
	return ids
}

// TestClaimKeepsKeyRuns checks the claim's per-key rule on the database: a
// key's rows are claimed only as the run that starts at its earliest pending
// row, never past a row that another relay holds, that backs off, or that a
// concurrent claim has locked.
func TestClaimKeepsKeyRuns(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	// ids 1..9: keys a b c a b c a b c
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO outbox_event (topic, key)
		SELECT 't', (ARRAY['a', 'b', 'c'])[1 + (i - 1) % 3] FROM generate_series(1, 9) AS i`)
	require.NoError(t, err)

	// Another relay holds a's first row; b's first row backs off; a
	// concurrent claim has c's second row (id 6) locked.
	_, err = db.Pool.Exec(ctx, `UPDATE outbox_event SET claimed_by = 'other', claimed_until = now() + interval '1 minute' WHERE id = 1`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE outbox_event SET available_at = now() + interval '1 minute' WHERE id = 2`)
	require.NoError(t, err)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT 1 FROM outbox_event WHERE id = 6 FOR UPDATE`)
	require.NoError(t, err)

	c := claimOnce(t, db, "me", 100)
	require.Equal(t, []int64{3}, claimedIDs(c), "only c's first row: a and b are blocked, c stops at the locked row")
	require.ElementsMatch(t, []string{"a", "b", "c"}, c.blocked)

	// Once the lock is gone, the same relay continues c's run: its own
	// lease on row 3 does not block it.
	require.NoError(t, tx.Rollback(ctx))
	c = claimOnce(t, db, "me", 100)
	require.Equal(t, []int64{6, 9}, claimedIDs(c))

	// Another relay gets nothing of c while "me" holds c's rows, nor of a
	// and b.
	c = claimOnce(t, db, "third", 100)
	require.Empty(t, c.rows)
	require.Equal(t, 4, c.candidates, "rows 4 5 7 8 are candidates, but blocked by rows 1 and 2")
}
