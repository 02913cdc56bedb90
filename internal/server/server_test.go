package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// deadline bounds waits for things that must happen; reaching it means the
// code is broken, not slow.
const deadline = 30 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none") // never connected
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	tests := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"negative workers", server.Config{Workers: -1}, "workers must be at least 1"},
		{"negative attempts", server.Config{MaxAttempts: -1}, "max attempts must be at least 1"},
		{"negative rescue", server.Config{RescueAfter: -time.Second}, "must not be negative"},
		{"rescue shorter than timeout", server.Config{RescueAfter: time.Second, JobTimeout: 2 * time.Second},
			"rescue-after (1s) must not be shorter than job-timeout (2s)"},
		{"negative max backlog", server.Config{MaxBacklog: -1}, "max backlog must be between 0 (no limit) and 1000000, got -1"},
		{"max backlog over the count's cap", server.Config{MaxBacklog: 1_000_001}, "max backlog must be between 0 (no limit) and 1000000"},
		{"max backlog without the count", server.Config{MaxBacklog: 5, MetricsInterval: -1}, "max backlog needs the periodic count"},
		{"bad backlog warning", server.Config{BacklogWarn: -5}, "backlog warning must be between 1 and 1000000 jobs"},
		{"bad backlog warning age", server.Config{BacklogWarnAge: -5}, "backlog warning age must be positive"},
		{"bad faults", server.Config{Jobs: jobs.Config{Faults: jobs.Faults{FailRate: 2}}}, "fail rate 2 is not between 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := server.New(pool, tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}

	// A rescue-after shorter than River's default job timeout lowers the
	// timeout instead of failing River's own check.
	_, err = server.New(pool, server.Config{RescueAfter: 2 * time.Second, NoRelay: true})
	require.NoError(t, err)
}

func TestReadyzDatabaseDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	srv, err := server.New(pool, server.Config{Logger: testLogger(t), NoRelay: true})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	resp, err := ts.Client().Get(ts.URL + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"database": "unreachable"}`, string(body))

	resp, err = ts.Client().Get(ts.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the process is alive even when the database is not")
}

func TestSignupHandler(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	srv, err := server.New(db.Pool, server.Config{Logger: testLogger(t), NoRelay: true})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	post := func(body string) (int, map[string]any) {
		resp, err := ts.Client().Post(ts.URL+"/signup", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	code, out := post(`{"email": "ada@example.com", "name": "Ada"}`)
	require.Equal(t, http.StatusCreated, code, out)
	require.Len(t, out["job_ids"], 3)
	code, out = post(`{"email": "ada@example.com"}`)
	require.Equal(t, http.StatusConflict, code, out)
	code, out = post(`{"email": `)
	require.Equal(t, http.StatusBadRequest, code, out)
	code, out = post(`{"email": "x@example.com", "name": "` + strings.Repeat("n", 201) + `"}`)
	require.Equal(t, http.StatusBadRequest, code, out)
	code, out = post(`{"email": "big@example.com", "name": "` + strings.Repeat("n", 70<<10) + `"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, out)
	require.Equal(t, "request body larger than 65536 bytes", out["error"])

	bad := []struct{ name, body, want string }{
		{"trailing object", `{"email": "t1@example.com"}{"email": "t2@example.com"}`, "trailing data after the JSON object"},
		{"trailing garbage", `{"email": "t1@example.com"} x`, "trailing data after the JSON object"},
		{"trailing brace", `{"email": "t1@example.com"}}`, "trailing data after the JSON object"},
		{"unknown field", `{"email": "t1@example.com", "nmae": "Typo"}`, `unknown field "nmae"`},
		{"empty", ``, "empty body"},
		{"not an object", `"t1@example.com"`, "malformed JSON body"},
	}
	for _, tt := range bad {
		code, out = post(tt.body)
		require.Equal(t, http.StatusBadRequest, code, tt.name)
		require.Contains(t, out["error"], tt.want, tt.name)
	}
	code, out = post("{\"email\": \"t1@example.com\"}\n\t ")
	require.Equal(t, http.StatusCreated, code, "trailing whitespace is fine: %v", out)
	var users int
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&users))
	require.Equal(t, 2, users, "no refused body signed anyone up")
}

// TestSignupBodyTooLarge: a 10 MB body is refused with 413 after reading at
// most the limit, and the server closes the connection instead of reading
// the rest.
func TestSignupBodyTooLarge(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	srv, err := server.New(db.Pool, server.Config{Logger: testLogger(t), NoRelay: true})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	body := `{"email": "big@example.com", "name": "` + strings.Repeat("n", 10<<20) + `"}`
	resp, err := ts.Client().Post(ts.URL+"/signup", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.True(t, resp.Close, "the connection is closed rather than the rest of the body read")
	var out map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Contains(t, out["error"], "larger than")
}

// TestRunDrains: cancelling Run's context stops the workers gracefully: a
// running job that finishes within ShutdownTimeout completes; one still
// running after it is cancelled (River retries it later). Run returns nil
// without leaving goroutines behind (goleak in TestMain).
func TestRunDrains(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		delay, shutdown time.Duration
		want            []string
	}{
		{"finishes within the timeout", 500 * time.Millisecond, 30 * time.Second, []string{"completed"}},
		{"cancelled after the timeout", time.Hour, 5 * time.Second, []string{"available", "retryable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)
			srv, err := server.New(db.Pool, server.Config{
				HTTPAddr:        "127.0.0.1:0",
				ShutdownTimeout: tc.shutdown,
				Jobs:            jobs.Config{Faults: jobs.Faults{Delay: tc.delay}},
				Logger:          testLogger(t),
				NoRelay:         true,
			})
			require.NoError(t, err)

			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Run(runCtx) }()

			var userID int64
			require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO users (email) VALUES ('ada@example.com') RETURNING id").Scan(&userID))
			res, err := srv.River().Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "ride"}, nil)
			require.NoError(t, err)

			var state string
			stop := time.Now().Add(deadline)
			for state != "running" {
				require.NoError(t, db.Pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", res.Job.ID).Scan(&state))
				require.False(t, time.Now().After(stop), "job never started; state %s", state)
				time.Sleep(5 * time.Millisecond)
			}

			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(deadline):
				t.Fatal("Run did not return after its context was cancelled")
			}
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", res.Job.ID).Scan(&state))
			require.Contains(t, tc.want, state)
		})
	}
}

// TestReadyzFailsFirstOnStop: once Run's context is cancelled, /readyz answers
// 503 "stopping" while HTTP keeps serving (/healthz 200) for the readiness
// grace, so that a load balancer stops sending first; then HTTP closes and Run
// returns.
func TestReadyzFailsFirstOnStop(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr:        addr,
		ReadinessGrace:  10 * time.Second, // long enough to look, on a loaded machine
		ShutdownTimeout: 30 * time.Second,
		Logger:          testLogger(t),
		NoRelay:         true,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline}
	get := func(path string) (int, string, error) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		stop := time.Now().Add(deadline)
		for !ok() {
			require.False(t, time.Now().After(stop), "timed out waiting for %s", what)
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("/readyz 200", func() bool { code, _, _ := get("/readyz"); return code == http.StatusOK })

	cancel()
	var body string
	waitUntil("/readyz 503", func() bool {
		var code int
		code, body, err = get("/readyz")
		require.NoError(t, err, "HTTP must keep answering while /readyz fails")
		return code == http.StatusServiceUnavailable
	})
	require.JSONEq(t, `{"status": "stopping"}`, body)
	code, _, err := get("/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "the process still serves during the readiness grace")

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(deadline):
		t.Fatal("Run did not return after the readiness grace")
	}
	_, _, err = get("/healthz")
	require.Error(t, err, "HTTP is closed once Run returned")
}
