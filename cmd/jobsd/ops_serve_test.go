package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
)

// TestServeMetrics: after a signup, /metrics shows the jobs by state and
// queue, the job outcomes by kind and the outbox gauges.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	_, base := startServe(t, db.env, "--metrics-interval", "50ms", "--no-relay")
	postSignup(t, base, "metrics@example.com")

	var body string
	want := []string{
		`jobsd_jobs{queue="default",state="completed"} 3`,
		`jobsd_jobs{queue="default",state="available"} 0`,
		`jobsd_jobs_completed_total{kind="create_profile"} 3`,
		`jobsd_job_duration_seconds_count{kind="create_profile",outcome="completed"} 3`,
		`jobsd_outbox_pending 1`,
		`jobsd_outbox_dead 0`,
		`jobsd_jobs_backlog 0`,
	}
	waitUntil(t, 30*time.Second, "the signup's jobs in /metrics", func() bool {
		code, b := get(t, base+"/metrics", "", "")
		require.Equal(t, http.StatusOK, code)
		body = b
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false
			}
		}
		return true
	})
	require.Regexp(t, `(?m)^jobsd_outbox_oldest_pending_age_seconds [0-9.e+-]+$`, body)
	require.Regexp(t, `(?m)^jobsd_jobs_backlog_oldest_age_seconds [0-9.e+-]+$`, body)
	require.Regexp(t, `(?m)^# TYPE jobsd_job_duration_seconds histogram$`, body)
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, `jobsd_jobs_failed_total{kind="create_profile"} 0`, "exists before the first failure")
	require.Regexp(t, `(?m)^jobsd_build_info\{commit="[^"]+",go_version="go[^"]+",version="[^"]+"\} 1$`, body)
}

// TestServeFailedJobMetrics: failed attempts are counted by kind.
func TestServeFailedJobMetrics(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	_, base := startServe(t, db.env, "--metrics-interval", "50ms", "--no-relay", "--fail-service", "food")
	postSignup(t, base, "fail@example.com")
	waitUntil(t, 30*time.Second, "a failed attempt in /metrics", func() bool {
		_, body := get(t, base+"/metrics", "", "")
		return strings.Contains(body, `jobsd_jobs_failed_total{kind="create_profile"} `) &&
			strings.Contains(body, `jobsd_jobs{queue="default",state="retryable"} 1`)
	})
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "pw-" + hex.EncodeToString(b)
}

// TestServeBasicAuth: with credentials, River UI and /metrics need them;
// /healthz and /signup do not; the password shows up nowhere.
func TestServeBasicAuth(t *testing.T) {
	t.Parallel()
	db := newOpsDB(t)
	password := randomSecret(t)
	env := append(db.env, "JOBSD_UI_PASSWORD="+password, "JOBSD_LOG_LEVEL=debug")
	p, base := startServe(t, env, "--ui-user", "ops", "--metrics-interval", "50ms")

	for _, path := range []string{"/riverui/", "/riverui/jobs", "/riverui/api/jobs?state=available", "/metrics"} {
		code, body := get(t, base+path, "", "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		require.NotContains(t, body, password)
		code, _ = get(t, base+path, "ops", "wrong")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = get(t, base+path, "admin", password)
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, body = get(t, base+path, "ops", password)
		require.Equal(t, http.StatusOK, code, path)
		require.NotContains(t, body, password, path)
	}
	resp, err := http.Get(base + "/riverui/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, `Basic realm="jobsd", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"))

	code, _ := get(t, base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	postSignup(t, base, "auth@example.com")
	_, ui := get(t, base+"/riverui/", "ops", password)
	require.Contains(t, ui, "<title>River")

	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(30*time.Second))
	require.NotContains(t, p.Output(), password)
	require.Contains(t, p.Output(), "http listening")
}

// TestServeRefusesOpenUI: River UI can cancel and retry jobs, so serve does
// not listen beyond loopback without credentials; it says so before it
// touches the database.
func TestServeRefusesOpenUI(t *testing.T) {
	t.Parallel()
	down := opsEnv("DATABASE_URL=postgres://ops:s3cret-pw@127.0.0.1:1/jobsd")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-addr", "0.0.0.0:0"}, "refusing to serve River UI and /metrics on 0.0.0.0:0 without credentials"},
		{[]string{"--http-addr", ":8080"}, "refusing to serve River UI and /metrics on :8080 without credentials"},
		{[]string{"--http-addr", "[::]:0"}, "without credentials"},
		{[]string{"--http-addr", "10.1.2.3:8080", "--ui-user", "ops"}, "set both --ui-user and --ui-password"},
		{[]string{"--ui-password", "x"}, "set both --ui-user and --ui-password"},
		{[]string{"--metrics-interval", "0s"}, "--metrics-interval must be positive"},
		{[]string{"--max-backlog", "-1"}, "--max-backlog must not be negative (0 means no limit)"},
		{[]string{"--max-backlog", "2000000"}, "max backlog must be between 0 (no limit) and 1000000"},
		{[]string{"--backlog-warn", "0"}, "--backlog-warn must be at least 1, or -1 to disable the warning"},
	} {
		args := append([]string{"serve"}, tc.args...)
		stderr := requireFailure(t, testbin.Run(t, down, args...), 2, tc.want, args...)
		require.NotContains(t, stderr, "s3cret-pw")
	}
	// With credentials the address is accepted: it gets as far as the
	// (unreachable) database, without listening anywhere.
	args := []string{"serve", "--http-addr", "0.0.0.0:0", "--ui-user", "ops", "--ui-password", "pw"}
	requireFailure(t, testbin.Run(t, down, args...), 1, "cannot reach database postgres://ops:xxxxx@127.0.0.1:1/jobsd", args...)
	args = []string{"serve", "--http-addr", "localhost:0"}
	requireFailure(t, testbin.Run(t, down, args...), 1, "cannot reach database", args...)
}

// TestHelpHidesPasswords: --help shows flag defaults, never values taken
// from the environment or the command line.
func TestHelpHidesPasswords(t *testing.T) {
	t.Parallel()
	uiPassword, dbPassword := randomSecret(t), randomSecret(t)
	env := opsEnv("JOBSD_UI_PASSWORD="+uiPassword, "JOBSD_UI_USER=ops",
		"DATABASE_URL=postgres://ops:"+dbPassword+"@127.0.0.1:1/jobsd")
	for _, args := range [][]string{
		{"--help"},
		{"serve", "--help"},
		{"serve", "--ui-password", uiPassword, "--help"},
		{"--database-url", "postgres://ops:" + dbPassword + "@127.0.0.1:1/jobsd", "serve", "--help"},
		{"retry", "--help"},
	} {
		res := testbin.Run(t, env, args...)
		require.Equal(t, 0, res.Code, "%v: %s", args, res.Stderr)
		require.NotContains(t, res.Stdout+res.Stderr, uiPassword, "%v", args)
		require.NotContains(t, res.Stdout+res.Stderr, dbPassword, "%v", args)
	}
	res := testbin.Run(t, env, "serve", "--help")
	require.Regexp(t, regexp.MustCompile(`--ui-password value +basic auth password .*\[\$JOBSD_UI_PASSWORD\]`), res.Stdout)
	require.Contains(t, res.Stdout, "Examples:")
}

// TestOpsHelpHasExamples: every operator command documents itself.
func TestOpsHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"retry"}, {"cancel"}, {"jobs", "list"}, {"jobs", "get"}, {"outbox", "stats"},
		{"outbox", "list"}, {"outbox", "replay"}, {"stats"}, {"serve"},
	} {
		res := testbin.Run(t, opsEnv(), append(args, "--help")...)
		require.Equal(t, 0, res.Code)
		require.Regexp(t, `Examples:\n +jobsd `+args[0], res.Stdout, "%v --help", args)
	}
}
