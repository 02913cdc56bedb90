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
// SIGINT (Ctrl-C) once progress shows, and checks the summary: every signup's
// jobs completed and every event consumed exactly once.
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
	require.Contains(t, out, "summary after")
	require.NotContains(t, out, "drain timed out", out)
	signups := atoi(t, regexp.MustCompile(`signups\s+(\d+)`).FindAllStringSubmatch(out, -1), out)
	m := regexp.MustCompile(`profile jobs\s+(\d+) completed, (\d+) discarded, (\d+) still open`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, strconv.Itoa(3*signups), m[1], "every signup's 3 profile jobs completed:\n%s", out)
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
