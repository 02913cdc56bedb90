package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/bench"
	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestBenchAllJSON runs every measurement at a tiny size and checks the
// report's shape and that each rate is positive; timings are not asserted.
func TestBenchAllJSON(t *testing.T) {
	t.Parallel()
	dbURL := testdb.MissingURL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	scratch := strings.TrimPrefix(u.Path, "/") + benchDatabaseSuffix
	t.Cleanup(func() { dropBenchDatabase(t, scratch) })
	b := testbroker.New(t)

	// Every measurement in a row: minutes on a loaded machine.
	res := testbin.RunWithin(t, 5*time.Minute, []string{"DATABASE_URL=" + dbURL, "AMQP_URL=" + b.URL},
		"bench", "all", "--messages", "500", "--duration", "1s", "--json",
		"--backlog-small", "300", "--backlog-large", "600", "--notify-rate", "200")
	require.Equal(t, 0, res.Code, "stderr:\n%s", res.Stderr)
	require.Contains(t, res.Stderr, scratch, "says which database it uses")
	require.Contains(t, res.Stderr, "relay: draining 500 rows", "progress on stderr")

	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "stdout %q", res.Stdout)
	require.False(t, dec.More(), "exactly one JSON document")
	require.Equal(t, scratch, rep.Database)
	require.Positive(t, rep.CPUs)
	require.NotEmpty(t, rep.GoVersion)
	require.NotNil(t, rep.Relay)
	require.NotNil(t, rep.Latency)
	require.NotNil(t, rep.Signups)
	for name, tp := range map[string]bench.Throughput{"raw": rep.Relay.Raw, "relay": rep.Relay.Relay, "relay hot keys": rep.Relay.RelayHotKeys} {
		require.Equal(t, 500, tp.Messages, name)
		require.Positive(t, tp.Rate, name)
	}
	require.Positive(t, rep.Relay.Ratio)
	require.Positive(t, rep.Relay.RatioHotKeys)
	for name, l := range map[string]bench.LatencyStats{"relay": rep.Latency.Relay, "broker": rep.Latency.Broker} {
		require.Equal(t, 500, l.Events, name)
		require.Positive(t, l.Rate, name)
		require.Positive(t, l.P50, name)
		require.GreaterOrEqual(t, l.P99, l.P50, name)
	}
	require.Positive(t, rep.Relay.RawNoConsumer.Rate)
	require.NotNil(t, rep.Backlog)
	require.Equal(t, []int{300, 600, 300, 600},
		[]int{rep.Backlog.RawSmall.Messages, rep.Backlog.RawLarge.Messages, rep.Backlog.Small.Messages, rep.Backlog.Large.Messages})
	require.Positive(t, rep.Backlog.LargeOverSmall)
	require.NotNil(t, rep.Scale)
	for _, runs := range []map[int]bench.Throughput{rep.Scale.UniqueKeys, rep.Scale.HotKeys} {
		for _, n := range []int{1, 2, 4} {
			require.Equal(t, 500, runs[n].Messages, "%d relays", n)
			require.Positive(t, runs[n].Rate, "%d relays", n)
		}
	}
	require.NotNil(t, rep.Notify)
	require.Equal(t, 200, rep.Notify.Commits)
	require.LessOrEqual(t, rep.Notify.PerCommit, 1.0, "at most one NOTIFY per commit")

	s := rep.Signups
	require.Equal(t, 50, s.Signups, "--signups defaults to messages/10")
	require.Equal(t, 150, s.Jobs)
	require.Positive(t, s.SignupRate)
	require.Positive(t, s.JobRate)
	require.Positive(t, s.RawJobRate)
	require.Positive(t, s.RatioToRaw)

	// The measurements really ran against the scratch database.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, strings.Replace(dbURL, u.Path, "/"+scratch, 1))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var users, profiles, consumed int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM profiles),
		(SELECT count(*) FROM consumer_inbox)`).Scan(&users, &profiles, &consumed))
	require.Equal(t, []int{50, 150, 50}, []int{users, profiles, consumed})
}

func dropBenchDatabase(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testdb.ServerURL())
	if err != nil {
		t.Logf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Logf("drop %s: %v", name, err)
	}
}

// TestBenchUsage checks bad command lines exit 2 with one line, before
// touching any database.
func TestBenchUsage(t *testing.T) {
	t.Parallel()
	env := dbEnv(downURL)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "nope"}, `unknown benchmark "nope"`},
		{[]string{"bench", "relay", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "--messages", "0"}, "--messages must be between 1"},
		{[]string{"bench", "all", "--messages", "abc"}, "invalid value"},
		{[]string{"bench", "latency", "--rate", "0"}, "--rate must be above 0"},
		{[]string{"bench", "latency", "--duration", "-1s"}, "--duration must be positive"},
		{[]string{"bench", "latency", "--rate", "0.5", "--duration", "1s"}, "sends no event"},
		{[]string{"bench", "signups", "--signups", "0"}, "--signups must be between 1"},
		{[]string{"bench", "--bogus"}, "flag provided but not defined"},
		{[]string{"--database-url", "host=127.0.0.1 dbname=x", "bench"}, "needs a postgres:// --database-url"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			requireOneLineError(t, testbin.Run(t, env, tc.args...), exitUsage, tc.want)
		})
	}
}

// TestBenchDatabaseDown: the scratch database's server is unreachable: exit 1,
// one line, no password.
func TestBenchDatabaseDown(t *testing.T) {
	t.Parallel()
	res := testbin.Run(t, dbEnv(downURL), "bench", "relay")
	require.Equal(t, exitFailure, res.Code, "stderr %q", res.Stderr)
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	require.True(t, strings.HasPrefix(lines[len(lines)-1], "jobsd: "), "stderr %q", res.Stderr)
	require.NotContains(t, res.Stderr, secret)
	require.Contains(t, res.Stderr, "jobsd_bench")
	require.Empty(t, res.Stdout)
}
