package sql_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	jsql "github.com/jobsd/jobsd/sql"
)

var update = flag.Bool("update", false, "rewrite testdata/queries/*.golden with the current output")

// The operator queries are run the way operators run them: with psql, its
// -v variables and the files on disk. Output is psql's --csv format (stable
// since PostgreSQL 12, unlike the aligned format), in UTC, with ISO dates.
// The queries' now() is pinned by the fixtures' testclock.now() (see
// testdata/queries/fixtures.sql), found first on the search_path, so every
// now()-relative filter and age in the output is deterministic. Queries must
// therefore say now(), never current_timestamp.
//
// Without psql the test skips (fails when CI is set).

// queryCases lists, per golden file, the query it runs and its psql variables.
// Every file in sql/queries must appear at least once.
var queryCases = []struct {
	golden, file string
	vars         []string
}{
	{"jobs_by_state", "jobs_by_state.sql", nil},
	{"failing_kinds", "failing_kinds.sql", nil},
	{"stuck_running", "stuck_running.sql", nil},
	{"stuck_running_10s", "stuck_running.sql", []string{"timeout=10 seconds"}},
	{"retry_storms", "retry_storms.sql", nil},
	{"retry_storms_min1", "retry_storms.sql", []string{"min_errors=1"}},
	{"discarded_per_day", "discarded_per_day.sql", nil},
	{"discarded_per_day_60", "discarded_per_day.sql", []string{"days=60"}},
	{"outbox_lag", "outbox_lag.sql", nil},
	{"outbox_dead", "outbox_dead.sql", nil},
	{"user_story_ada", "user_story.sql", []string{"email=Ada@Example.com"}},
	{"user_story_bob", "user_story.sql", []string{"email=bob@example.com"}},
	{"user_story_unknown", "user_story.sql", []string{"email=nobody@example.com"}},
	{"nothing_lost", "nothing_lost.sql", nil},
	{"nothing_lost_queue", "nothing_lost.sql", []string{"queue=analytics"}},
	{"nothing_lost_other_queue", "nothing_lost.sql", []string{"queue=analytics.walkthrough"}},
}

func TestQueriesGolden(t *testing.T) {
	t.Parallel()
	psql := findPsql(t)
	db := testdb.New(t)
	out, err := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.URL,
		"-f", filepath.Join("..", "testdata", "queries", "fixtures.sql")).CombinedOutput()
	require.NoError(t, err, "load fixtures: %s", out)

	covered := map[string]bool{}
	for _, tc := range queryCases {
		covered[tc.file] = true
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			got, stderr, err := runQuery(psql, db.URL, tc.file, tc.vars...)
			require.NoError(t, err, "psql -f %s: %s", tc.file, stderr)
			require.Empty(t, stderr, "psql wrote to stderr")
			golden := filepath.Join("..", "testdata", "queries", tc.golden+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "missing golden file (run go test ./sql -run TestQueriesGolden -update)")
			require.Equal(t, string(want), string(got), "output of %s differs from %s", tc.file, golden)
		})
	}

	entries, err := fs.ReadDir(jsql.Queries(), ".")
	require.NoError(t, err)
	for _, e := range entries {
		require.True(t, covered[e.Name()], "sql/queries/%s has no golden test case in queryCases", e.Name())
	}
}

func TestUserStoryNeedsEmail(t *testing.T) {
	t.Parallel()
	psql := findPsql(t)
	db := testdb.New(t)
	_, stderr, err := runQuery(psql, db.URL, "user_story.sql")
	require.Error(t, err)
	require.Contains(t, stderr, "user_story.sql needs an email")
}

// TestQueriesDocumented checks each file's opening comment: what it is for,
// when to use it, its parameters and how to run it.
func TestQueriesDocumented(t *testing.T) {
	t.Parallel()
	entries, err := fs.ReadDir(jsql.Queries(), ".")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		b, err := fs.ReadFile(jsql.Queries(), e.Name())
		require.NoError(t, err)
		var header []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "--") {
				break
			}
			header = append(header, line)
		}
		text := strings.Join(header, "\n")
		require.NotEmpty(t, header, "%s must start with a comment", e.Name())
		for _, want := range []string{"-- Use when:", "-- Parameters:", "-- Run: psql", "-f sql/queries/" + e.Name()} {
			require.Contains(t, text, want, "%s's opening comment", e.Name())
		}
		require.NotContains(t, string(b), "current_timestamp", "%s: use now(), which the tests pin", e.Name())
	}
}

func findPsql(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("psql not found (CI is set, so this fails): install postgresql-client")
		}
		t.Skip("psql not found; skipping the query tests (set CI=1 to fail instead)")
	}
	return path
}

// runQuery runs sql/queries/<file> with psql as an operator would, with the
// test clock first on the search_path.
func runQuery(psql, url, file string, vars ...string) (stdout []byte, stderr string, err error) {
	args := []string{"-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-d", url}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	args = append(args, "-f", filepath.Join("queries", file))
	cmd := exec.Command(psql, args...)
	cmd.Env = append(os.Environ(),
		"PGTZ=UTC",
		"PGOPTIONS=-c search_path=testclock,public,pg_catalog -c IntervalStyle=postgres -c DateStyle=ISO,MDY",
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.String(), err
}
