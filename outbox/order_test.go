package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// deadline bounds waits for things that must happen; reaching it means the
// code is broken, not slow.
const deadline = 30 * time.Second

type writeResult struct {
	ids []int64
	err error
}

// writeInBackground begins a transaction and runs WriteReturningIDs in a
// goroutine. It returns the transaction, its backend pid and a channel that
// receives the result once Write returns.
func writeInBackground(t *testing.T, db *testdb.DB, events ...outbox.Event) (pgx.Tx, uint32, <-chan writeResult) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var pid uint32
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	done := make(chan writeResult, 1)
	go func() {
		ids, err := outbox.WriteReturningIDs(ctx, tx, events...)
		done <- writeResult{ids, err}
	}()
	return tx, pid, done
}

// waitUntilBlockedOnAdvisoryLock polls pg_stat_activity until backend pid
// waits for an advisory lock, or fails the test at the deadline.
func waitUntilBlockedOnAdvisoryLock(t *testing.T, db *testdb.DB, pid uint32, done <-chan writeResult) {
	t.Helper()
	ctx := context.Background()
	stop := time.Now().Add(deadline)
	for {
		select {
		case r := <-done:
			t.Fatalf("second writer of the key returned before the first one committed: ids %v, err %v", r.ids, r.err)
		default:
		}
		var waitType, waitEvent *string
		err := db.Pool.QueryRow(ctx, "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid).
			Scan(&waitType, &waitEvent)
		require.NoError(t, err)
		if waitType != nil && *waitType == "Lock" && waitEvent != nil && *waitEvent == "advisory" {
			return
		}
		if time.Now().After(stop) {
			t.Fatalf("backend %d never waited for the key's advisory lock", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive(t *testing.T, done <-chan writeResult) writeResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(deadline):
		t.Fatal("Write did not return")
		return writeResult{}
	}
}

// TestWriteSameKeyWaitsForCommit: a second transaction writing the same key
// cannot write until the first commits, so within one key ids are in commit
// order and the relay never publishes a later event of the key first.
func TestWriteSameKeyWaitsForCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	tx1, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx1.Rollback(ctx) })
	ids1, err := outbox.WriteReturningIDs(ctx, tx1, outbox.Event{Topic: "t", Key: "K", Payload: 1})
	require.NoError(t, err)

	tx2, pid2, done2 := writeInBackground(t, db, outbox.Event{Topic: "t", Key: "K", Payload: 2})
	waitUntilBlockedOnAdvisoryLock(t, db, pid2, done2)
	select {
	case r := <-done2:
		t.Fatalf("T2's Write returned while T1 was open: %+v", r)
	default:
	}

	require.NoError(t, tx1.Commit(ctx))
	r2 := receive(t, done2)
	require.NoError(t, r2.err)
	require.NoError(t, tx2.Commit(ctx))

	require.Less(t, ids1[0], r2.ids[0], "ids follow commit order within a key")
	rows := readEvents(t, db, "WHERE key = 'K'")
	require.Len(t, rows, 2)
	require.Equal(t, []int64{ids1[0], r2.ids[0]}, []int64{rows[0].ID, rows[1].ID})
}

// TestWriteSameKeyAfterRollback: the lock is released by a rollback too.
func TestWriteSameKeyAfterRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	tx1, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx1.Rollback(ctx) })
	require.NoError(t, outbox.Write(ctx, tx1, outbox.Event{Topic: "t", Key: "K", Payload: 1}))

	tx2, pid2, done2 := writeInBackground(t, db, outbox.Event{Topic: "t", Key: "K", Payload: 2})
	waitUntilBlockedOnAdvisoryLock(t, db, pid2, done2)
	require.NoError(t, tx1.Rollback(ctx))
	r2 := receive(t, done2)
	require.NoError(t, r2.err)
	require.NoError(t, tx2.Commit(ctx))

	rows := readEvents(t, db, "")
	require.Len(t, rows, 1)
	require.JSONEq(t, "2", rows[0].Payload)
}

// TestWriteOtherKeyDoesNotWait: writers of different keys do not serialise.
func TestWriteOtherKeyDoesNotWait(t *testing.T) {
	t.Parallel()
	for _, keys := range [][2]string{{"K1", "K2"}, {"", ""}} { // keyless writers take no lock
		t.Run(fmt.Sprintf("%q then %q", keys[0], keys[1]), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)

			tx1, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx1.Rollback(ctx) })
			require.NoError(t, outbox.Write(ctx, tx1, outbox.Event{Topic: "t", Key: keys[0], Payload: 1}))

			// T1 stays open while T2 writes and commits.
			tx2, _, done2 := writeInBackground(t, db, outbox.Event{Topic: "t", Key: keys[1], Payload: 2})
			r2 := receive(t, done2)
			require.NoError(t, r2.err)
			require.NoError(t, tx2.Commit(ctx))
			require.NoError(t, tx1.Commit(ctx))
			require.Len(t, readEvents(t, db, ""), 2)
		})
	}
}

// TestWriteSeveralKeysBothOrders: two transactions writing the same two keys
// in opposite orders serialise instead of deadlocking.
func TestWriteSeveralKeysBothOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	tx1, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx1.Rollback(ctx) })
	ids1, err := outbox.WriteReturningIDs(ctx, tx1,
		outbox.Event{Topic: "t", Key: "A", Payload: 1},
		outbox.Event{Topic: "t", Key: "B", Payload: 1},
	)
	require.NoError(t, err)

	tx2, pid2, done2 := writeInBackground(t, db,
		outbox.Event{Topic: "t", Key: "B", Payload: 2},
		outbox.Event{Topic: "t", Key: "A", Payload: 2},
	)
	waitUntilBlockedOnAdvisoryLock(t, db, pid2, done2)
	require.NoError(t, tx1.Commit(ctx))
	r2 := receive(t, done2)
	require.NoError(t, r2.err)
	require.NoError(t, tx2.Commit(ctx))
	for _, id := range r2.ids {
		require.Greater(t, id, ids1[1])
	}
}
