package main

import (
	jsql "github.com/jobsd/jobsd/sql"

	"context"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testbin.Cleanup()
		os.Exit(code)
	}))
}

// deadline bounds waits for things that must happen; reaching it means the
// code is broken, not slow.
const deadline = 90 * time.Second

// downURL points at a port where no Postgres listens, with a password that must
// never be printed.
const (
	secret          = "s3cr3t-pw"
	downURL         = "postgres://jobsd:" + secret + "@127.0.0.1:1/jobsd?sslmode=disable"
	downURLPassword = "postgres://jobsd@127.0.0.1:1/jobsd?sslmode=disable&password=" + secret
)

func dbEnv(url string) []string { return []string{"DATABASE_URL=" + url} }

// requireOneLineError checks the CLI contract for failures: one line on
// stderr, starting "jobsd: ", no stack trace, no panic.
func requireOneLineError(t *testing.T, res testbin.Result, wantCode int, wantSubstr string) {
	t.Helper()
	require.Equal(t, wantCode, res.Code, "exit code; stdout %q, stderr %q", res.Stdout, res.Stderr)
	require.True(t, strings.HasSuffix(res.Stderr, "\n"), "stderr %q", res.Stderr)
	require.Equal(t, 1, strings.Count(res.Stderr, "\n"), "stderr must be one line: %q", res.Stderr)
	require.True(t, strings.HasPrefix(res.Stderr, "jobsd: "), "stderr %q", res.Stderr)
	require.Contains(t, res.Stderr, wantSubstr)
	for _, bad := range []string{"panic", "goroutine", ".go:"} {
		require.NotContains(t, res.Stderr, bad)
	}
	require.Empty(t, res.Stdout)
}

type migrateJSON struct {
	DatabaseCreated bool `json:"database_created"`
	Applied         []struct {
		Line    string `json:"line"`
		Version int    `json:"version"`
		Name    string `json:"name"`
	} `json:"applied"`
}

func parseMigrateJSON(t *testing.T, stdout string) migrateJSON {
	t.Helper()
	var out migrateJSON
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "stdout %q", stdout)
	require.False(t, dec.More(), "exactly one JSON document")
	require.NotNil(t, out.Applied, "applied is a list, never null")
	return out
}

// requireMigrated checks that river's and jobsd's tables exist.
func requireMigrated(t *testing.T, db *testdb.DB) {
	t.Helper()
	var n int
	err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('river_job', 'river_leader', 'outbox_event', 'users', 'profiles', 'consumer_inbox', 'analytics_counts')`).Scan(&n)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	var versions []int
	rows, err := db.Pool.Query(context.Background(), "SELECT version FROM jobsd_migration ORDER BY version")
	require.NoError(t, err)
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	var want []int
	for _, m := range jsql.Migrations() {
		want = append(want, m.Version)
	}
	require.Equal(t, want, versions)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)

	first := testbin.Run(t, dbEnv(db.URL), "migrate")
	require.Equal(t, 0, first.Code, first.Stderr)
	require.NotContains(t, first.Stdout, "created database", "the database existed")
	require.Contains(t, first.Stdout, "applied river migration 001 create river migration\n")
	require.Contains(t, first.Stdout, "applied jobsd migration 001 outbox\n")
	require.Contains(t, first.Stdout, "applied jobsd migration 002 signup\n")
	requireMigrated(t, db)

	second := testbin.Run(t, dbEnv(db.URL), "migrate")
	require.Equal(t, 0, second.Code, second.Stderr)
	require.Equal(t, "schema is up to date\n", second.Stdout)

	asJSON := testbin.Run(t, dbEnv(db.URL), "migrate", "--json")
	require.Equal(t, 0, asJSON.Code, asJSON.Stderr)
	out := parseMigrateJSON(t, asJSON.Stdout)
	require.False(t, out.DatabaseCreated)
	require.Empty(t, out.Applied)
	requireMigrated(t, db)
}

func TestMigrateJSONFresh(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	res := testbin.Run(t, dbEnv(db.URL), "migrate", "--json")
	require.Equal(t, 0, res.Code, res.Stderr)
	out := parseMigrateJSON(t, res.Stdout)
	require.False(t, out.DatabaseCreated)
	require.NotEmpty(t, out.Applied)
	require.Equal(t, "river", out.Applied[0].Line)
	require.Equal(t, 1, out.Applied[0].Version)
	last, newest := out.Applied[len(out.Applied)-1], jsql.Migrations()[len(jsql.Migrations())-1]
	require.Equal(t, "jobsd", last.Line)
	require.Equal(t, newest.Version, last.Version)
	require.Equal(t, newest.Name, last.Name)
}

func TestMigrateCreatesDatabase(t *testing.T) {
	t.Parallel()
	url := testdb.MissingURL(t)

	res := testbin.Run(t, dbEnv(url), "migrate", "--json")
	require.Equal(t, 0, res.Code, res.Stderr)
	out := parseMigrateJSON(t, res.Stdout)
	require.True(t, out.DatabaseCreated)
	require.NotEmpty(t, out.Applied)

	again := testbin.Run(t, dbEnv(url), "migrate")
	require.Equal(t, 0, again.Code, again.Stderr)
	require.Equal(t, "schema is up to date\n", again.Stdout)

	// The new database is usable.
	signup := testbin.Run(t, dbEnv(url), "signup", "--email", "first@example.com")
	require.Equal(t, 0, signup.Code, signup.Stderr)
}

// TestMigrateConcurrently: two `jobsd migrate` starting at once both succeed
// and the schema is migrated once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"existing empty database", func(t *testing.T) string { return testdb.NewEmpty(t).URL }},
		{"missing database", func(t *testing.T) string { return testdb.MissingURL(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := tt.url(t)
			procs := []*testbin.Process{
				testbin.Start(t, dbEnv(url), "migrate"),
				testbin.Start(t, dbEnv(url), "migrate"),
			}
			var outputs string
			for _, p := range procs {
				require.Equal(t, 0, p.Wait(deadline), p.Output())
				outputs += p.Output()
			}
			require.Equal(t, 1, strings.Count(outputs, "applied jobsd migration 002 signup"), outputs)
			require.Equal(t, 1, strings.Count(outputs, "applied river migration 001 "), outputs)
			require.Equal(t, 1, strings.Count(outputs, "schema is up to date"), outputs)
			require.LessOrEqual(t, strings.Count(outputs, "created database"), 1, outputs)
			requireMigrated(t, &testdb.DB{URL: url, Pool: poolFor(t, url)})
		})
	}
}

var signupText = regexp.MustCompile(`^user (\d+) (\S+)\njobs \[(\d+) (\d+) (\d+)\]\nevent (\d+)\n$`)

func TestSignup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	res := testbin.Run(t, dbEnv(db.URL), "signup", "--email", " Ada@Example.com ", "--name", "Ada", "--max-attempts", "3")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Empty(t, res.Stderr)
	m := signupText.FindStringSubmatch(res.Stdout)
	require.NotNil(t, m, "stdout %q", res.Stdout)
	require.Equal(t, "ada@example.com", m[2])
	userID := mustInt(t, m[1])
	jobIDs := []int64{mustInt(t, m[3]), mustInt(t, m[4]), mustInt(t, m[5])}
	eventID := mustInt(t, m[6])

	var (
		email, name string
		jobUsers    []int64
		maxAttempts []int
		eventKey    string
	)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT email, name FROM users WHERE id = $1", userID).Scan(&email, &name))
	require.Equal(t, "ada@example.com", email)
	require.Equal(t, "Ada", name)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg((args->>'user_id')::bigint ORDER BY id), array_agg(max_attempts ORDER BY id)
		FROM river_job WHERE id = ANY($1) AND kind = 'create_profile'`, jobIDs).Scan(&jobUsers, &maxAttempts))
	require.Equal(t, []int64{userID, userID, userID}, jobUsers)
	require.Equal(t, []int{3, 3, 3}, maxAttempts)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT key FROM outbox_event WHERE id = $1 AND topic = 'user.signed_up'", eventID).Scan(&eventKey))
	require.Equal(t, strconv.FormatInt(userID, 10), eventKey)

	asJSON := testbin.Run(t, dbEnv(db.URL), "signup", "--email", "grace@example.com", "--json")
	require.Equal(t, 0, asJSON.Code, asJSON.Stderr)
	var out struct {
		User struct {
			ID        int64     `json:"id"`
			Email     string    `json:"email"`
			Name      string    `json:"name"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"user"`
		JobIDs  []int64 `json:"job_ids"`
		EventID int64   `json:"event_id"`
	}
	dec := json.NewDecoder(strings.NewReader(asJSON.Stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), asJSON.Stdout)
	require.False(t, dec.More())
	require.Equal(t, "grace@example.com", out.User.Email)
	require.Greater(t, out.User.ID, userID)
	require.Len(t, out.JobIDs, 3)
	require.Greater(t, out.EventID, eventID)
	require.False(t, out.User.CreatedAt.IsZero())
}

func TestSignupDuplicate(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)

	first := testbin.Run(t, dbEnv(db.URL), "signup", "--email", "linus@example.com")
	require.Equal(t, 0, first.Code, first.Stderr)
	for _, email := range []string{"linus@example.com", "LINUS@example.com"} {
		dup := testbin.Run(t, dbEnv(db.URL), "signup", "--email", email)
		requireOneLineError(t, dup, 1, "already exists")
	}
	var users, jobs int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM river_job)").Scan(&users, &jobs))
	require.Equal(t, 1, users)
	require.Equal(t, 3, jobs)
}

// TestUsageErrors: bad command lines exit 2 with one line, before touching the
// database (which is down here).
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing email", []string{"signup"}, "missing --email"},
		{"missing email with name", []string{"signup", "--name", "Ada"}, "missing --email"},
		{"invalid email", []string{"signup", "--email", "not-an-email"}, `"not-an-email" is not an email address`},
		{"empty email", []string{"signup", "--email", ""}, "email is empty"},
		{"email flag without value", []string{"signup", "--email"}, "flag needs an argument"},
		{"max attempts zero", []string{"signup", "--email", "a@example.com", "--max-attempts", "0"}, "--max-attempts must be at least 1"},
		{"max attempts not a number", []string{"signup", "--email", "a@example.com", "--max-attempts", "abc"}, "invalid value"},
		{"unknown signup flag", []string{"signup", "--email", "a@example.com", "--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown migrate flag", []string{"migrate", "--force"}, "flag provided but not defined: -force"},
		{"unknown global flag", []string{"--bogus", "migrate"}, "flag provided but not defined: -bogus"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"bad log format", []string{"--log-format", "xml", "migrate"}, `invalid --log-format "xml"`},
		{"bad log level", []string{"--log-level", "loud", "migrate"}, `invalid --log-level "loud"`},
		{"serve zero workers", []string{"serve", "--workers", "0"}, "--workers and --max-attempts must be at least 1"},
		{"serve bad fail rate", []string{"serve", "--fail-rate", "1.5"}, "fail rate 1.5 is not between 0 and 1"},
		{"serve negative fail attempts", []string{"serve", "--fail-attempts", "-1"}, "fail attempts -1 is negative"},
		{"serve bad duration", []string{"serve", "--rescue-after", "soon"}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := testbin.Run(t, dbEnv(downURL), tt.args...)
			requireOneLineError(t, res, 2, tt.want)
		})
	}
}

// TestServeInvalidConfig: a configuration that server.New rejects is a usage
// error too.
func TestServeInvalidConfig(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res := testbin.Run(t, dbEnv(db.URL), "serve", "--http-addr", "-", "--rescue-after", "1s", "--job-timeout", "2s")
	requireOneLineError(t, res, 2, "rescue-after (1s) must not be shorter than job-timeout (2s)")
}

// TestDatabaseDown: every command that needs the database exits 1 with one
// line that names the (redacted) URL and never prints the password.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"migrate"},
		{"migrate", "--json"},
		{"signup", "--email", "ada@example.com"},
		{"serve", "--http-addr", "-"},
	}
	urls := map[string]string{
		"password in userinfo": downURL,
		"password in query":    downURLPassword,
		"keyword/value string": "host=127.0.0.1 port=1 user=jobsd password=" + secret + " dbname=jobsd sslmode=disable",
	}
	for where, url := range urls {
		for _, args := range commands {
			t.Run(strings.Join(args, " ")+", "+where, func(t *testing.T) {
				t.Parallel()
				res := testbin.Run(t, dbEnv(url), args...)
				requireOneLineError(t, res, 1, "cannot reach database")
				require.Contains(t, res.Stderr, "xxxxx")
				require.NotContains(t, res.Stderr, secret)
			})
		}
	}
}

func TestSignupMissingDatabase(t *testing.T) {
	t.Parallel()
	res := testbin.Run(t, dbEnv(testdb.MissingURL(t)), "signup", "--email", "ada@example.com")
	requireOneLineError(t, res, 1, "does not exist (run `jobsd migrate`, which creates it)")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	res := testbin.Run(t, dbEnv(downURL), "--help")
	require.Equal(t, 0, res.Code, res.Stderr)
	for _, cmd := range []string{"migrate", "serve", "signup"} {
		require.Contains(t, res.Stdout, cmd)
	}
	res = testbin.Run(t, dbEnv(downURL), "signup", "--help")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Contains(t, res.Stdout, "--email")
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

// TestServePortInUse: an address that cannot be listened on is a run-time
// failure with a hint, not a hang or a panic.
func TestServePortInUse(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })

	res := testbin.Run(t, dbEnv(db.URL), "serve", "--no-relay", "--http-addr", ln.Addr().String())
	requireOneLineError(t, res, 1, "address already in use (is another jobsd serve running? use --http-addr)")
}
