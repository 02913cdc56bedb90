package chaos_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/chaos"
	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/internal/testlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// TestSmokeCrashRecovery runs one scenario of `make chaos`, short, so that the
// harness cannot rot: on the shared servers, in a database and an exchange and
// queues of its own (it stops no server), kill -9 of a serve and a consumer
// under load must lose, duplicate and reorder nothing.
func TestSmokeCrashRecovery(t *testing.T) {
	db := testdb.New(t) // skips, or fails when CI is set, if Postgres is unreachable
	broker := testbroker.New(t)
	var out bytes.Buffer
	progress := &testlog.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := chaos.Run(ctx, chaos.Config{
		Bin:          testbin.Path(t),
		Scenarios:    []string{"crash_recovery"},
		Duration:     8 * time.Second,
		Rate:         15,
		DrainTimeout: time.Minute,
		LogDir:       t.TempDir(),
		External:     &chaos.External{DatabaseURL: db.URL, AMQPURL: broker.URL},
		Out:          &out,
		Log:          progress,
	})
	t.Logf("table:\n%s\nprogress:\n%s", out.String(), progress.String())
	require.NoError(t, err)
	require.Len(t, sum.Results, 1)
	res := sum.Results[0]
	require.Empty(t, res.Failure)
	require.True(t, sum.OK())
	require.Positive(t, res.Acked, "no signup was acknowledged")
	require.Equal(t, 3*res.Counts.Users, res.Counts.Profiles)
	require.Equal(t, res.Counts.Events, res.Counts.EventsApplied)
	require.Contains(t, res.Fates, "sA:rec×1")
	require.Regexp(t, regexp.MustCompile(`(?m)^crash_recovery .* PASS\n`), out.String())
	require.Regexp(t, regexp.MustCompile(`\nchaos: 1 scenarios, 0 lost jobs, 0 lost events, 0 duplicate effects, 0 order violations\n$`), out.String())
}

func TestSelect(t *testing.T) {
	t.Parallel()
	all, err := chaos.Select(nil, false)
	require.NoError(t, err)
	require.Len(t, all, len(chaos.Scenarios()))
	_, err = chaos.Select([]string{"nope"}, false)
	require.ErrorContains(t, err, "unknown scenario(s) nope")
	_, err = chaos.Select([]string{"broker_restart"}, true)
	require.ErrorContains(t, err, "only on the harness's own servers")
	some, err := chaos.Select([]string{"overload", "crash_recovery"}, false)
	require.NoError(t, err)
	require.Equal(t, "crash_recovery", some[0].Name) // matrix order
}
