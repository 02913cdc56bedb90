package relay

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
)

// newTestRun returns the state of a run of a relay with id, closed when the
// test ends.
func newTestRun(t *testing.T, db *testdb.DB, id string, batch int) *run {
	t.Helper()
	r, err := New(db.Pool, "amqp://guest:guest@127.0.0.1:5672/", Config{ID: id, BatchSize: batch, Logger: testLogger()})
	require.NoError(t, err)
	u := newRun(context.Background(), r)
	t.Cleanup(u.close)
	return u
}

// claimOnce runs one claim transaction of run u, as the claimer does, and
// holds what it claimed.
func claimOnce(t *testing.T, u *run) claimResult {
	t.Helper()
	c, err := u.claimTx(context.Background(), time.Now(), nil, u.heldRuns())
	require.NoError(t, err)
	u.hold(c.rows)
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

	me := newTestRun(t, db, "me", 100)
	c := claimOnce(t, me)
	require.Equal(t, []int64{3}, claimedIDs(c), "only c's first row: a and b are blocked, c stops at the locked row")
	require.ElementsMatch(t, []string{"a", "b", "c"}, c.blocked)

	// Once the lock is gone, the same run continues c's run after the row
	// it holds.
	require.NoError(t, tx.Rollback(ctx))
	c = claimOnce(t, me)
	require.Equal(t, []int64{6, 9}, claimedIDs(c))

	// Another relay gets nothing of c while "me" holds c's rows, nor of a
	// and b.
	c = claimOnce(t, newTestRun(t, db, "third", 100))
	require.Empty(t, c.rows)
	require.Equal(t, 4, c.candidates, "rows 4 5 7 8 are candidates, but blocked by rows 1 and 2")

	// A new run of the same relay id does not take the earlier run's leases
	// for its own: c stays blocked for it too. Taking them over (as Run does
	// at start) makes c claimable from its first row.
	again := newTestRun(t, db, "me", 100)
	c = claimOnce(t, again)
	require.Empty(t, c.rows)
	again.takeover(ctx)
	c = claimOnce(t, again)
	require.Equal(t, []int64{3, 6, 9}, claimedIDs(c))
}

// TestClaimAfterLostRelease: a row the run gave back in memory but could not
// release in the table (the database failed) still blocks its key, because
// the run no longer counts it as held; claims continue after the key's held
// rows only while nothing of the key left the pipeline.
func TestClaimAfterLostRelease(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO outbox_event (topic, key) SELECT 't', 'k' FROM generate_series(1, 4)`)
	require.NoError(t, err)
	u := newTestRun(t, db, "me", 2)
	c := claimOnce(t, u)
	require.Equal(t, []int64{1, 2}, claimedIDs(c))

	// Row 1 fails to publish; its failure is not written yet (or its write
	// failed). Row 2 is still held.
	u.mu.Lock()
	u.leaves(c.rows[0])
	u.mu.Unlock()
	u.unhold(c.rows[:1]) // as if the run forgot it

	c = claimOnce(t, u)
	require.Empty(t, c.rows, "row 1 is still leased in the table: k must wait for it")
	require.Equal(t, []string{"k"}, c.blocked)
}
