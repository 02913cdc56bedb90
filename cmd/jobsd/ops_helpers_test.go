package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/signup"
)

// Helpers of the operator-command tests (ops_*_test.go, ui_test.go).

// opsDB is a test database with jobsd's environment for the binary.
type opsDB struct {
	*testdb.DB
	env []string
}

func newOpsDB(t *testing.T) *opsDB {
	t.Helper()
	db := testdb.New(t)
	return &opsDB{DB: db, env: opsEnv("DATABASE_URL=" + db.URL)}
}

// opsEnv is the environment of a jobsd run: no COLUMNS from the caller's
// terminal, and no 1s sleep at exit of a -race binary (GORACE atexit_sleep_ms).
func opsEnv(extra ...string) []string {
	return append([]string{"COLUMNS=", "GORACE=atexit_sleep_ms=0"}, extra...)
}

// run runs jobsd against the database and requires exit 0 with an empty stderr.
func (d *opsDB) run(t *testing.T, args ...string) string {
	t.Helper()
	res := testbin.Run(t, d.env, args...)
	require.Equal(t, 0, res.Code, "jobsd %s: stderr %q", strings.Join(args, " "), res.Stderr)
	require.Empty(t, res.Stderr, "jobsd %s wrote to stderr", strings.Join(args, " "))
	return res.Stdout
}

// fail runs jobsd and requires exit code, no stdout and exactly one line on
// stderr containing want.
func (d *opsDB) fail(t *testing.T, code int, want string, args ...string) string {
	t.Helper()
	return requireFailure(t, testbin.Run(t, d.env, args...), code, want, args...)
}

func requireFailure(t *testing.T, res testbin.Result, code int, want string, args ...string) string {
	t.Helper()
	cmd := "jobsd " + strings.Join(args, " ")
	require.Equal(t, code, res.Code, "%s: exit code (stderr %q)", cmd, res.Stderr)
	require.Empty(t, res.Stdout, "%s: stdout on failure", cmd)
	require.True(t, strings.HasSuffix(res.Stderr, "\n") && strings.Count(res.Stderr, "\n") == 1,
		"%s: want exactly one line on stderr, got %q", cmd, res.Stderr)
	require.True(t, strings.HasPrefix(res.Stderr, "jobsd: "), "%s: stderr %q", cmd, res.Stderr)
	require.Contains(t, res.Stderr, want, cmd)
	return res.Stderr
}

// runJSON runs a --json command and decodes its single JSON document into v.
func (d *opsDB) runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := d.run(t, args...)
	decodeOne(t, out, v)
}

// decodeOne requires s to hold exactly one JSON value and decodes it into v.
func decodeOne(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	require.NoError(t, dec.Decode(v), "not JSON: %q", s)
	var extra json.RawMessage
	require.ErrorIs(t, dec.Decode(&extra), io.EOF, "more than one JSON value in %q", s)
}

// signups signs n users up in-process (user, 3 create_profile jobs, 1 event
// each) and returns the job ids and event ids in order.
func (d *opsDB) signups(t *testing.T, n int) (jobIDs, eventIDs []int64) {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(d.Pool), &river.Config{})
	require.NoError(t, err)
	svc := &signup.Service{Pool: d.Pool, River: client}
	for i := range n {
		res, err := svc.Signup(context.Background(), fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("User %d", i))
		require.NoError(t, err)
		jobIDs = append(jobIDs, res.JobIDs...)
		eventIDs = append(eventIDs, res.EventID)
	}
	return jobIDs, eventIDs
}

func (d *opsDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := d.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func (d *opsDB) jobState(t *testing.T, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, d.Pool.QueryRow(context.Background(), "SELECT state::text FROM river_job WHERE id = $1", id).Scan(&s))
	return s
}

// discard makes job id discarded after two failed attempts, as River would.
func (d *opsDB) discard(t *testing.T, id int64) {
	t.Helper()
	d.exec(t, `UPDATE river_job SET state = 'discarded', attempt = 2, max_attempts = 2,
		attempted_at = now(), finalized_at = now(), attempted_by = '{test-host}',
		errors = ARRAY[
			jsonb_build_object('at', now() - interval '1 minute', 'attempt', 1, 'error', 'injected fault: service food unavailable', 'trace', ''),
			jsonb_build_object('at', now(), 'attempt', 2, 'error', 'food: 500 Internal Server Error', 'trace', '')]
		WHERE id = $1`, id)
}

// startServe starts `jobsd serve` on a free loopback port and returns the
// process and its base URL once it listens.
func startServe(t *testing.T, env []string, args ...string) (*testbin.Process, string) {
	t.Helper()
	args = append([]string{"serve", "--http-addr", "127.0.0.1:0"}, args...)
	p := testbin.Start(t, env, args...)
	return p, "http://" + httpAddr(t, p)
}

// waitFor polls cond until it holds; it fails the test after limit (a
// safety net, not a timing assertion).
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get does a GET, with basic auth when user is set, and returns the status and body.
func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func postSignup(t *testing.T, base, email string) {
	t.Helper()
	resp, err := http.Post(base+"/signup", "application/json", bytes.NewBufferString(`{"email":"`+email+`","name":"T"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}
