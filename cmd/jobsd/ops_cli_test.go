package main

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
)

// TestOpsBadInput feeds every operator command the mistakes an operator
// makes: each gives its documented exit code and one line on stderr.
func TestOpsBadInput(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	states := "valid states: available, cancelled, completed, discarded, pending, retryable, running, scheduled"
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"retry", "--id", "abc"}, 2, `invalid --id "abc": want a positive integer`},
		{[]string{"retry", "--id", "-3"}, 2, `invalid --id "-3"`},
		{[]string{"retry", "--id", "0"}, 2, `invalid --id "0"`},
		{[]string{"retry", "--id", "1.5"}, 2, `invalid --id "1.5"`},
		{[]string{"retry", "--id", "99999999999999999999"}, 2, "invalid --id"},
		{[]string{"retry"}, 2, "missing --id (see 'jobsd retry --help')"},
		{[]string{"retry", "--id"}, 2, "flag needs an argument"},
		{[]string{"retry", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"retry", "--id", "1", "--state", "discarded"}, 2, "use one form"},
		{[]string{"retry", "--id", "1", "--dry-run"}, 2, "use one form"},
		{[]string{"retry", "--state", "bogus"}, 2, `invalid --state "bogus" (` + states + ")"},
		{[]string{"retry", "--state", "running"}, 2, "River does not retry running jobs"},
		{[]string{"retry", "--kind", "create_profile"}, 2, "bulk retry needs --state"},
		{[]string{"retry", "--id", "999999"}, 1, "job 999999 not found"},
		{[]string{"cancel", "--id", "abc"}, 2, `invalid --id "abc"`},
		{[]string{"cancel", "--id", "-3"}, 2, `invalid --id "-3"`},
		{[]string{"cancel"}, 2, "missing --id (see 'jobsd cancel --help')"},
		{[]string{"cancel", "--id", "999999"}, 1, "job 999999 not found"},
		{[]string{"jobs", "list", "--state", "bogus"}, 2, states},
		{[]string{"jobs", "list", "--state", "available", "--state", "nope"}, 2, `invalid --state "nope"`},
		{[]string{"jobs", "list", "--limit", "0"}, 2, "invalid --limit 0: want 1 to 10000"},
		{[]string{"jobs", "list", "--limit", "10001"}, 2, "invalid --limit 10001"},
		{[]string{"jobs", "list", "--limit", "abc"}, 2, "invalid value"},
		{[]string{"jobs", "get"}, 2, "missing --id (see 'jobsd jobs get --help')"},
		{[]string{"jobs", "get", "--id", "x"}, 2, `invalid --id "x"`},
		{[]string{"jobs", "get", "--id", "999999"}, 1, "job 999999 not found"},
		{[]string{"jobs", "frob"}, 2, `unknown command "frob" (see 'jobsd jobs --help')`},
		{[]string{"outbox", "list", "--state", "bogus"}, 2, "valid states: pending, published, dead"},
		{[]string{"outbox", "list", "--limit", "-1"}, 2, "invalid --limit -1"},
		{[]string{"outbox", "replay"}, 2, "missing --id or --all-dead"},
		{[]string{"outbox", "replay", "--id", "abc"}, 2, `invalid --id "abc"`},
		{[]string{"outbox", "replay", "--id", "0"}, 2, `invalid --id "0"`},
		{[]string{"outbox", "replay", "--id", "1", "--all-dead"}, 2, "use either --id or --all-dead"},
		{[]string{"outbox", "replay", "--topic", "t"}, 2, "--topic and --dry-run go with --all-dead"},
		{[]string{"outbox", "replay", "--id", "999999"}, 1, "event 999999 not found"},
		{[]string{"outbox", "frob"}, 2, `unknown command "frob" (see 'jobsd outbox --help')`},
		{[]string{"stats", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"outbox", "stats", "--json=maybe"}, 2, "invalid boolean value"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			t.Parallel()
			db.fail(t, tc.code, tc.want, tc.args...)
		})
	}
}

// TestOpsUnreachableDatabase: every command says which database it could not
// reach, without its password, in one line, exit 1; usage errors still win.
func TestOpsUnreachableDatabase(t *testing.T) {
	t.Parallel()
	env := opsEnv("DATABASE_URL=postgres://ops:s3cret-pw@127.0.0.1:1/jobsd?sslmode=disable")
	for _, args := range [][]string{
		{"retry", "--id", "1"},
		{"retry", "--state", "discarded", "--dry-run"},
		{"cancel", "--id", "1"},
		{"jobs", "list"},
		{"jobs", "get", "--id", "1", "--json"},
		{"outbox", "stats", "--json"},
		{"outbox", "list"},
		{"outbox", "replay", "--id", "1"},
		{"outbox", "replay", "--all-dead"},
		{"stats", "--json"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			stderr := requireFailure(t, testbin.Run(t, env, args...), 1,
				"cannot reach database postgres://ops:xxxxx@127.0.0.1:1/jobsd", args...)
			require.NotContains(t, stderr, "s3cret-pw")
		})
	}
	requireFailure(t, testbin.Run(t, env, "retry", "--id", "abc"), 2, `invalid --id "abc"`, "retry", "--id", "abc")
}

func TestRetryAndCancel(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	ids, _ := db.signups(t, 2)
	discarded, running, completed, available, discarded2 := ids[0], ids[1], ids[2], ids[4], ids[3]
	db.discard(t, discarded)
	db.discard(t, discarded2)
	db.exec(t, "UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1", running)
	db.exec(t, "UPDATE river_job SET state = 'completed', attempt = 1, attempted_at = now(), finalized_at = now() WHERE id = $1", completed)

	t.Run("discarded job becomes available", func(t *testing.T) {
		var res struct {
			ID            int64  `json:"id"`
			State         string `json:"state"`
			PreviousState string `json:"previous_state"`
			MaxAttempts   int    `json:"max_attempts"`
		}
		db.runJSON(t, &res, "retry", "--id", fmt.Sprint(discarded), "--json")
		require.Equal(t, discarded, res.ID)
		require.Equal(t, "available", res.State)
		require.Equal(t, "discarded", res.PreviousState)
		require.Equal(t, 3, res.MaxAttempts, "River grants one more attempt to an exhausted job")
		require.Equal(t, "available", db.jobState(t, discarded))
	})
	t.Run("completed job runs again", func(t *testing.T) {
		out := db.run(t, "retry", "--id", fmt.Sprint(completed))
		require.Equal(t, fmt.Sprintf("job %d (create_profile): completed -> available, attempt 1 of 25\n", completed), out)
	})
	t.Run("running job is refused", func(t *testing.T) {
		db.fail(t, 1, fmt.Sprintf("job %d is running, so it was not retried", running), "retry", "--id", fmt.Sprint(running))
		require.Equal(t, "running", db.jobState(t, running))
	})
	t.Run("cancel running job requests cancellation", func(t *testing.T) {
		out := db.run(t, "cancel", "--id", fmt.Sprint(running))
		require.Contains(t, out, "is running: cancellation requested")
		require.Equal(t, "running", db.jobState(t, running))
		var requested bool
		require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT metadata ? 'cancel_attempted_at' FROM river_job WHERE id = $1", running).Scan(&requested))
		require.True(t, requested)
	})
	t.Run("cancel available job", func(t *testing.T) {
		var res struct{ State, PreviousState string }
		db.runJSON(t, &res, "cancel", "--id", fmt.Sprint(available), "--json")
		require.Equal(t, "cancelled", res.State)
		require.Equal(t, "cancelled", db.jobState(t, available))
	})
	t.Run("cancel finished job is refused", func(t *testing.T) {
		db.fail(t, 1, fmt.Sprintf("job %d is already discarded", discarded2), "cancel", "--id", fmt.Sprint(discarded2))
	})
	t.Run("bulk dry run changes nothing", func(t *testing.T) {
		var res bulkResult
		db.runJSON(t, &res, "retry", "--state", "discarded", "--kind", "create_profile", "--dry-run", "--json")
		require.Equal(t, bulkResult{DryRun: true, Count: 1, IDs: []int64{discarded2}}, res)
		require.Equal(t, "discarded", db.jobState(t, discarded2))
		out := db.run(t, "retry", "--state", "discarded", "--kind", "other_kind", "--dry-run")
		require.Equal(t, "would retry 0 jobs: none\n", out)
	})
	t.Run("bulk retry", func(t *testing.T) {
		out := db.run(t, "retry", "--state", "discarded", "--state", "cancelled", "--kind", "create_profile")
		require.Equal(t, fmt.Sprintf("retried 2 jobs: %d %d\n", discarded2, available), out)
		require.Equal(t, "available", db.jobState(t, discarded2))
		require.Equal(t, "available", db.jobState(t, available))
		var res bulkResult
		db.runJSON(t, &res, "retry", "--state", "discarded", "--json")
		require.Equal(t, bulkResult{IDs: []int64{}}, res)
	})
}

func TestJobsListAndGet(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)

	var empty []any
	require.Equal(t, "[]\n", db.run(t, "jobs", "list", "--json"))
	db.runJSON(t, &empty, "jobs", "list", "--json")
	require.NotNil(t, empty)
	require.Equal(t, "no jobs match\n", db.run(t, "jobs", "list"))

	ids, _ := db.signups(t, 2)
	db.discard(t, ids[5])

	out := db.run(t, "jobs", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 7)
	require.Regexp(t, `^ID +KIND +STATE +ATTEMPT +QUEUE +AGE +LAST ERROR$`, lines[0])
	require.Regexp(t, fmt.Sprintf(`^%d +create_profile +discarded +2/2 +default +\d+s +food: 500 Internal Server Error$`, ids[5]), lines[1])
	require.Regexp(t, fmt.Sprintf(`^%d +create_profile +available +0/25 +default +\d+s$`, ids[0]), lines[6])

	narrow := testbin.Run(t, append(db.env, "COLUMNS=50"), "jobs", "list")
	require.Equal(t, 0, narrow.Code)
	for _, line := range strings.Split(strings.TrimRight(narrow.Stdout, "\n"), "\n") {
		require.LessOrEqual(t, utf8.RuneCountInString(line), 50, line)
	}
	require.Contains(t, narrow.Stdout, "…")

	var jobs []jobView
	db.runJSON(t, &jobs, "jobs", "list", "--state", "available", "--kind", "create_profile", "--limit", "2", "--json")
	require.Len(t, jobs, 2)
	require.Equal(t, ids[4], jobs[0].ID)
	require.NotNil(t, jobs[0].Errors)

	db.runJSON(t, &jobs, "jobs", "list", "--queue", "no_such_queue", "--json")
	require.Empty(t, jobs)
	db.runJSON(t, &jobs, "jobs", "list", "--state", "discarded", "--json")
	require.Len(t, jobs, 1)

	var job jobView
	db.runJSON(t, &job, "jobs", "get", "--id", fmt.Sprint(ids[5]), "--json")
	require.Equal(t, "discarded", job.State)
	require.JSONEq(t, `{"user_id": 2, "service": "food"}`, string(job.Args))
	require.Len(t, job.Errors, 2)
	require.Equal(t, "injected fault: service food unavailable", job.Errors[0].Error)
	require.Equal(t, 2, job.Errors[1].Attempt)
	require.Equal(t, "food: 500 Internal Server Error", job.LastError)
	require.NotNil(t, job.FinalizedAt)

	text := db.run(t, "jobs", "get", "--id", fmt.Sprint(ids[5]))
	for _, want := range []string{"state      discarded", "attempt    2 of 2", `args       {"service": "food", "user_id": 2}`,
		"attempted  ", "by test-host", "#1 ", "injected fault: service food unavailable", "#2 ", "food: 500 Internal Server Error"} {
		require.Contains(t, text, want)
	}
}

func TestOutboxCommands(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)

	var st outboxStats
	db.runJSON(t, &st, "outbox", "stats", "--json")
	require.Equal(t, outboxStats{Topics: []topicStats{}}, st)
	db.runJSON(t, &st, "outbox", "stats", "--exact", "--json")
	require.Equal(t, outboxStats{Topics: []topicStats{}, PublishedExact: true}, st)
	require.Contains(t, db.run(t, "outbox", "stats", "--json"), `"topics": []`)
	require.Equal(t, "[]\n", db.run(t, "outbox", "list", "--json"))

	_, events := db.signups(t, 4)
	dead, published, pending, dead2 := events[0], events[1], events[2], events[3]
	db.exec(t, "UPDATE outbox_event SET state = 'dead', attempt = 10, last_error = 'NOT_FOUND - no exchange', claimed_by = 'relay-1', claimed_until = now() WHERE id = $1", dead)
	db.exec(t, "UPDATE outbox_event SET state = 'published', attempt = 1, published_at = now() WHERE id = $1", published)
	db.exec(t, "INSERT INTO outbox_event (topic, key, state, attempt, last_error) VALUES ('order.placed', 'o-1', 'dead', 10, 'too large')")

	db.runJSON(t, &st, "outbox", "stats", "--exact", "--json")
	require.Equal(t, int64(2), st.Pending)
	require.Equal(t, int64(1), st.Published)
	require.True(t, st.PublishedExact)
	require.Equal(t, int64(2), st.Dead)
	require.Greater(t, st.OldestPendingAgeSeconds, 0.0)
	require.Len(t, st.Topics, 2)
	require.Equal(t, "order.placed", st.Topics[0].Topic)
	require.Equal(t, int64(1), st.Topics[0].Dead)
	require.Equal(t, 0.0, st.Topics[0].OldestPendingAgeSeconds)
	require.Equal(t, int64(2), st.Topics[1].Pending)
	require.Equal(t, int64(1), *st.Topics[1].Published)
	require.Regexp(t, `^pending 2  published 1  dead 2  oldest pending \S+\n\nTOPIC +PENDING +PUBLISHED +DEAD +OLDEST PENDING\norder.placed +0 +0 +1 +-\nuser.signed_up +2 +1 +1 +\S+\n$`,
		db.run(t, "outbox", "stats", "--exact"))

	// Without --exact, published rows are Postgres' estimate (current after
	// ANALYZE) and not counted per topic; pending and dead stay exact.
	db.exec(t, "ANALYZE outbox_event")
	st = outboxStats{}
	db.runJSON(t, &st, "outbox", "stats", "--json")
	require.Equal(t, int64(2), st.Pending)
	require.Equal(t, int64(1), st.Published)
	require.False(t, st.PublishedExact)
	require.Equal(t, int64(2), st.Dead)
	require.Nil(t, st.Topics[1].Published)
	require.Regexp(t, `^pending 2  published ~1  dead 2  oldest pending \S+\n\nTOPIC +PENDING +DEAD +OLDEST PENDING\norder.placed +0 +1 +-\nuser.signed_up +2 +1 +\S+\n$`,
		db.run(t, "outbox", "stats"))

	var list []eventView
	db.runJSON(t, &list, "outbox", "list", "--state", "dead", "--topic", "user.signed_up", "--json")
	require.Len(t, list, 1)
	require.Equal(t, dead, list[0].ID)
	require.Equal(t, "NOT_FOUND - no exchange", list[0].LastError)
	require.JSONEq(t, `{}`, string(list[0].Headers))
	require.Contains(t, string(list[0].Payload), `"email": "user0@example.com"`)
	require.Contains(t, db.run(t, "outbox", "list", "--limit", "1"), "order.placed")

	db.fail(t, 1, fmt.Sprintf("event %d is pending, not dead", pending), "outbox", "replay", "--id", fmt.Sprint(pending))
	db.fail(t, 1, fmt.Sprintf("event %d is published, not dead", published), "outbox", "replay", "--id", fmt.Sprint(published))

	require.Equal(t, fmt.Sprintf("event %d: dead -> pending\n", dead), db.run(t, "outbox", "replay", "--id", fmt.Sprint(dead)))
	var state string
	var attempt int
	var claimed bool
	require.NoError(t, db.Pool.QueryRow(t.Context(),
		"SELECT state, attempt, claimed_by IS NOT NULL OR claimed_until IS NOT NULL FROM outbox_event WHERE id = $1", dead).
		Scan(&state, &attempt, &claimed))
	require.Equal(t, "pending", state)
	require.Zero(t, attempt)
	require.False(t, claimed)

	db.exec(t, "UPDATE outbox_event SET state = 'dead' WHERE id = $1", dead2)
	var res bulkResult
	db.runJSON(t, &res, "outbox", "replay", "--all-dead", "--topic", "user.signed_up", "--dry-run", "--json")
	require.Equal(t, bulkResult{DryRun: true, Count: 1, IDs: []int64{dead2}}, res)
	db.runJSON(t, &st, "outbox", "stats", "--json")
	require.Equal(t, int64(2), st.Dead, "dry run changed nothing")

	require.Equal(t, fmt.Sprintf("replayed 1 dead event: %d\n", dead2), db.run(t, "outbox", "replay", "--all-dead", "--topic", "user.signed_up"))
	db.runJSON(t, &res, "outbox", "replay", "--all-dead", "--json")
	require.Equal(t, 1, res.Count, "the order.placed event")
	db.runJSON(t, &st, "outbox", "stats", "--json")
	require.Zero(t, st.Dead)
	require.Equal(t, int64(4), st.Pending)
}

func TestStats(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	require.Equal(t, "jobs: none\n\noutbox: pending 0  published ~0  dead 0  oldest pending -\n"+
		"processes: relays 0 live 0 stale  workers 0 live 0 stale\n", db.run(t, "stats"))

	ids, _ := db.signups(t, 2)
	db.discard(t, ids[0])
	db.exec(t, "UPDATE river_job SET queue = 'mail' WHERE id = $1", ids[1])

	// One live relay (seen "in an hour": live however slowly the test runs),
	// one dead worker (not seen for a minute).
	db.exec(t, `INSERT INTO jobsd_process (holder, kind, seen_at) VALUES ('r/1', 'relay', now() + interval '1 hour')`)
	db.exec(t, `INSERT INTO jobsd_process (holder, kind, seen_at) VALUES ('w', 'worker', now() - interval '1 minute')`)

	var st struct {
		Jobs      map[string]map[string]int64 `json:"jobs"`
		Outbox    outboxStats                 `json:"outbox"`
		Processes map[string]processCount     `json:"processes"`
	}
	db.runJSON(t, &st, "stats", "--json")
	require.Equal(t, map[string]processCount{"relay": {Live: 1}, "worker": {Stale: 1}}, st.Processes)
	require.Equal(t, map[string]int64{"available": 4, "discarded": 1, "cancelled": 0, "completed": 0,
		"pending": 0, "retryable": 0, "running": 0, "scheduled": 0}, st.Jobs["default"])
	require.Equal(t, int64(1), st.Jobs["mail"]["available"])
	require.Equal(t, int64(2), st.Outbox.Pending)

	out := db.run(t, "stats")
	require.Regexp(t, `(?m)^QUEUE +available +cancelled +completed +discarded +pending +retryable +running +scheduled$`, out)
	require.Regexp(t, `(?m)^default +4 +0 +0 +1 +0 +0 +0 +0$`, out)
	require.Regexp(t, `(?m)^mail +1 +0 +0 +0 +0 +0 +0 +0$`, out)
	require.Regexp(t, `(?m)^outbox: pending 2  published ~0  dead 0  oldest pending \S+$`, out)
	require.Regexp(t, `(?m)^processes: relays 1 live 0 stale  workers 0 live 1 stale$`, out)
}

// TestReadCommandsPrintOneJSONDocument: with --json, every read command
// prints exactly one JSON value, lists as [] rather than null.
func TestReadCommandsPrintOneJSONDocument(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	commands := [][]string{
		{"jobs", "list", "--json"},
		{"jobs", "list", "--state", "discarded", "--json"},
		{"outbox", "stats", "--json"},
		{"outbox", "list", "--json"},
		{"outbox", "list", "--state", "dead", "--json"},
		{"stats", "--json"},
		{"retry", "--state", "discarded", "--dry-run", "--json"},
		{"outbox", "replay", "--all-dead", "--dry-run", "--json"},
	}
	check := func(t *testing.T) {
		for _, args := range commands {
			out := db.run(t, args...)
			var v any
			decodeOne(t, out, &v)
			requireNoNull(t, v, strings.Join(args, " "))
		}
	}
	t.Run("empty", check)
	ids, _ := db.signups(t, 1)
	db.discard(t, ids[0])
	commands = append(commands, []string{"jobs", "get", "--id", fmt.Sprint(ids[0]), "--json"})
	t.Run("populated", check)
}

// requireNoNull walks a decoded JSON value: only timestamps (keys ending in
// _at) may be null; lists and objects never are.
func requireNoNull(t *testing.T, v any, where string) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Fatalf("%s: null", where)
	case []any:
		for i, e := range v {
			requireNoNull(t, e, fmt.Sprintf("%s[%d]", where, i))
		}
	case map[string]any:
		for k, e := range v {
			if e == nil && strings.HasSuffix(k, "_at") {
				continue
			}
			requireNoNull(t, e, where+"."+k)
		}
	}
}

// TestOpsUnmigratedDatabase: a database without jobsd's tables gets a hint.
func TestOpsUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	db.exec(t, "DROP TABLE river_job CASCADE")
	db.exec(t, "DROP TABLE outbox_event CASCADE")
	for _, args := range [][]string{
		{"jobs", "list"},
		{"stats", "--json"},
		{"outbox", "stats"},
		{"outbox", "list", "--json"},
		{"outbox", "replay", "--id", "1"},
		{"retry", "--state", "discarded"},
		{"retry", "--id", "1"},
		{"jobs", "get", "--id", "1"},
		{"cancel", "--id", "1"},
	} {
		db.fail(t, 1, "does not exist (is the database migrated? run `jobsd migrate`)", args...)
	}
}
