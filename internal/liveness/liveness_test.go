package liveness_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/liveness"
	"github.com/jobsd/jobsd/internal/testdb"
)

// reaper records what its Release was given.
type reaper struct {
	mu   sync.Mutex
	dead []string
}

func (r *reaper) release(_ context.Context, _ pgx.Tx, dead []string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, dead...)
	return int64(len(dead)), nil
}

func (r *reaper) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dead)
}

func registered(t *testing.T, db *testdb.DB, holder string) bool {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM jobsd_process WHERE holder = $1", holder).Scan(&n))
	return n == 1
}

func backendOf(t *testing.T, db *testdb.DB, holder string) int {
	t.Helper()
	var pid int
	err := db.Pool.QueryRow(context.Background(), `
		SELECT l.pid FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('jobsd.process:' || $1, 0)`, holder).Scan(&pid)
	if err == pgx.ErrNoRows {
		return 0
	}
	require.NoError(t, err)
	return pid
}

// TestDeadProcessReaped: a process whose connection is gone (a kill -9) is
// found dead by a live one of its kind, which gives back its work once; a
// process of another kind is not reaped by it.
func TestDeadProcessReaped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	cfg := db.Pool.Config().ConnConfig

	var alive, other reaper
	a := liveness.Start(ctx, cfg, liveness.Config{Kind: liveness.KindRelay, Holder: "alive", Release: alive.release})
	defer a.Stop(ctx)
	w := liveness.Start(ctx, cfg, liveness.Config{Kind: liveness.KindWorker, Holder: "worker", Release: other.release})
	defer w.Stop(ctx)
	dead := liveness.Start(ctx, cfg, liveness.Config{Kind: liveness.KindRelay, Holder: "dead"})
	require.Eventually(t, func() bool { return registered(t, db, "dead") && backendOf(t, db, "dead") != 0 },
		time.Minute, 10*time.Millisecond)
	dead.Abandon() // the connection closes, the row stays: as after kill -9

	require.Eventually(t, func() bool { return len(alive.got()) > 0 }, time.Minute, 50*time.Millisecond,
		"the live relay never found the dead one")
	require.Equal(t, []string{"dead"}, alive.got())
	require.False(t, registered(t, db, "dead"), "the dead process's row is deleted")
	require.True(t, registered(t, db, "alive"))
	require.Empty(t, other.got(), "a worker reaps only workers")
}

// TestReconnectIsNotDeath: a live process whose connection is terminated
// (pg_terminate_backend, a database restart) registers again on a new one and
// is not reaped: its row stays fresh.
func TestReconnectIsNotDeath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	cfg := db.Pool.Config().ConnConfig

	var r reaper
	a := liveness.Start(ctx, cfg, liveness.Config{Kind: liveness.KindWorker, Holder: "a", Release: r.release})
	defer a.Stop(ctx)
	b := liveness.Start(ctx, cfg, liveness.Config{Kind: liveness.KindWorker, Holder: "b"})
	defer b.Stop(ctx)

	// Terminate b's connection a few times, each once b has taken its lock
	// again on a new one, across more than liveness.Settle + Grace.
	until := time.Now().Add(liveness.Settle + 2*liveness.Grace)
	last := 0
	for kills := 0; time.Now().Before(until) || kills < 3; kills++ {
		var pid int
		require.Eventually(t, func() bool { pid = backendOf(t, db, "b"); return pid != 0 && pid != last },
			time.Minute, 10*time.Millisecond, "b did not reconnect")
		_, err := db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
		last = pid
	}
	require.Eventually(t, func() bool { p := backendOf(t, db, "b"); return p != 0 && p != last },
		time.Minute, 10*time.Millisecond, "b did not reconnect")
	require.Empty(t, r.got(), "a live process that reconnects is not dead")
	require.True(t, registered(t, db, "b"))
}

// TestStopUnregisters: a clean stop deletes the row, so nothing is reaped.
func TestStopUnregisters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	p := liveness.Start(ctx, db.Pool.Config().ConnConfig, liveness.Config{Kind: liveness.KindRelay, Holder: "x"})
	require.Eventually(t, func() bool { return registered(t, db, "x") }, time.Minute, 10*time.Millisecond)
	p.Stop(ctx)
	require.False(t, registered(t, db, "x"))
	require.Zero(t, backendOf(t, db, "x"), "the lock is released")
}
