package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestRescueAfterKill is the crash test: a worker process is killed with
// SIGKILL while it runs a signup's three jobs; another process rescues the
// orphaned jobs within seconds (its liveness lock is free, see
// internal/liveness) and completes them, creating each profile exactly once.
func TestRescueAfterKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	// Every profile call of the first worker hangs for an hour.
	first := testbin.Start(t, dbEnv(db.URL), "serve", "--no-relay", "--http-addr", "-", "--work-delay", "1h")

	res := testbin.Run(t, dbEnv(db.URL), "signup", "--email", "ada@example.com", "--json")
	require.Equal(t, 0, res.Code, res.Stderr)
	var out struct {
		User   struct{ ID int64 } `json:"user"`
		JobIDs []int64            `json:"job_ids"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &out))
	require.Len(t, out.JobIDs, 3)

	type jobRow struct {
		ID      int64
		State   string
		Attempt int
		Errors  string
	}
	var jobs []jobRow
	readJobs := func() {
		rows, err := db.Pool.Query(ctx, `SELECT id, state, attempt, coalesce(array_to_string(errors, ' '), '')
			FROM river_job WHERE id = ANY($1) ORDER BY id`, out.JobIDs)
		require.NoError(t, err)
		defer rows.Close()
		jobs = jobs[:0]
		for rows.Next() {
			var j jobRow
			require.NoError(t, rows.Scan(&j.ID, &j.State, &j.Attempt, &j.Errors))
			jobs = append(jobs, j)
		}
		require.NoError(t, rows.Err())
	}
	allIn := func(state string) bool {
		readJobs()
		for _, j := range jobs {
			if j.State != state {
				return false
			}
		}
		return len(jobs) == 3
	}
	status := func() string { return fmt.Sprintf("jobs: %+v", jobs) }

	waitFor(t, "the first worker to run the 3 jobs", func() bool { return allIn("running") }, status)
	first.Kill()

	// Orphaned: still running, attempted once, no profile.
	require.True(t, allIn("running"), status())
	var profiles int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM profiles").Scan(&profiles))
	require.Zero(t, profiles)

	// River's rescuer is left at its default (an hour): the second process
	// rescues the jobs because the first one's liveness lock is free.
	second := testbin.Start(t, dbEnv(db.URL), "serve", "--no-relay", "--http-addr", "-")
	waitFor(t, "the second worker to rescue and complete the 3 jobs", func() bool { return allIn("completed") }, status)

	for _, j := range jobs {
		require.GreaterOrEqual(t, j.Attempt, 2, "job %d ran in both processes", j.ID)
		require.Contains(t, j.Errors, "died while running this job; rescued", "job %d", j.ID)
	}
	rows, err := db.Pool.Query(ctx, "SELECT user_id, service FROM profiles ORDER BY service")
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var userID int64
		var service string
		require.NoError(t, rows.Scan(&userID, &service))
		require.Equal(t, out.User.ID, userID)
		got = append(got, service)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"food", "pay", "ride"}, got, "exactly one profile per service")

	require.NoError(t, second.Signal(syscall.SIGTERM))
	require.Equal(t, 0, second.Wait(deadline), second.Output())
	require.True(t, strings.Contains(second.Output(), "stopped"), second.Output())
}
