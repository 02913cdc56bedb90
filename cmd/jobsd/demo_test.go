package main

import (
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestDemoCtrlC runs the first-run experience as a user would, stops it with
// SIGINT (Ctrl-C) once progress shows, and checks that every progress line
// adds up (the job columns sum to 3 per signup) and the summary: every
// signup's jobs completed and every event consumed exactly once.
func TestDemoCtrlC(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t) // the demo migrates by itself
	b := testbroker.New(t)
	name := b.Name("demo")

	p := testbin.Start(t, []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL},
		"demo", "--rate", "50ms", "--http-addr", "-", "--exchange", name, "--queue", name,
		"--drain-timeout", "60s", "--fail-rate", "0.2")
	progress := regexp.MustCompile(`signups [1-9]\d* \| jobs completed [1-9]`)
	deadline := time.Now().Add(90 * time.Second)
	for !progress.MatchString(p.Output()) {
		select {
		case <-p.Done():
			t.Fatalf("demo exited before showing progress:\n%s", p.Output())
		case <-time.After(100 * time.Millisecond):
		}
		require.False(t, time.Now().After(deadline), "no progress line:\n%s", p.Output())
	}
	require.NoError(t, p.Signal(syscall.SIGINT))
	require.Equal(t, 0, p.Wait(90*time.Second), p.Output())

	out := p.Output()
	require.Contains(t, out, `-> queue "`+name+`" (emptied at start: 0 old messages purged)`)
	lines := regexp.MustCompile(`signups (\d+) \| jobs completed (\d+) running (\d+) retrying (\d+) waiting (\d+) discarded (\d+)(?: cancelled (\d+))?, retries (\d+) \|`).
		FindAllStringSubmatch(out, -1)
	require.NotEmpty(t, lines, out)
	for _, l := range lines {
		n := nums(t, l[1:8])
		require.Equal(t, 3*n[0], n[1]+n[2]+n[3]+n[4]+n[5]+n[6], "the job columns add up to 3 per signup: %q", l[0])
	}
	require.Contains(t, out, "summary after")
	require.NotContains(t, out, "drain timed out", out)
	signups := atoi(t, regexp.MustCompile(`signups\s+(\d+)`).FindAllStringSubmatch(out, -1), out)
	m := regexp.MustCompile(`profile jobs\s+(\d+): (\d+) completed, (\d+) discarded, (\d+) cancelled, (\d+) still open \((\d+) running, (\d+) retrying, (\d+) waiting\)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	n := nums(t, m[1:])
	require.Equal(t, []int{3 * signups, 3 * signups, 0, 0, 0, 0, 0, 0}, n, "every signup's 3 profile jobs completed:\n%s", out)
	m = regexp.MustCompile(`retries\s+(\d+) performed; (\d+) attempts failed`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	n = nums(t, m[1:])
	require.Equal(t, n[0], n[1], "every failed attempt was retried (all jobs completed):\n%s", out)
	m = regexp.MustCompile(`analytics events\s+(\d+) published, (\d+) consumed, 0 pending, 0 dead`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, strconv.Itoa(signups), m[1], out)
	require.Equal(t, m[1], m[2], "every published event consumed:\n%s", out)

	var profiles, applied int
	require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM profiles").Scan(&profiles))
	require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT coalesce(sum(n), 0) FROM analytics_counts").Scan(&applied))
	require.Equal(t, 3*signups, profiles)
	require.Equal(t, signups, applied, "the analytics effect happened once per signup")
}

// atoi returns the number of the last match (the summary's, after progress lines).
func atoi(t *testing.T, matches [][]string, out string) int {
	t.Helper()
	require.NotEmpty(t, matches, out)
	n, err := strconv.Atoi(matches[len(matches)-1][1])
	require.NoError(t, err)
	return n
}

// nums converts regexp groups to ints; an empty (optional) group is 0.
func nums(t *testing.T, groups []string) []int {
	t.Helper()
	n := make([]int, len(groups))
	for i, g := range groups {
		if g == "" {
			continue
		}
		var err error
		n[i], err = strconv.Atoi(g)
		require.NoError(t, err)
	}
	return n
}
