package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/internal/testlog"
)

// TestSignupRefusedOverMaxBacklog: above --max-backlog, POST /signup answers
// 503 with Retry-After and a JSON error instead of adding jobs; /readyz stays
// 200 and reports the backlog; /metrics shows it; the warning is logged once
// per crossing; below the limit signups are taken again.
func TestSignupRefusedOverMaxBacklog(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var logs testlog.Buffer
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr:        "-",
		NoRelay:         true,
		MaxBacklog:      5,
		BacklogWarn:     5,
		BacklogWarnAge:  -1,
		MetricsInterval: 20 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	runServer(t, srv)

	readyz := func() map[string]any {
		resp, err := ts.Client().Get(ts.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "a backlog never fails readiness")
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return body
	}
	waitBacklog := func(want float64) map[string]any {
		var body map[string]any
		require.Eventually(t, func() bool {
			body = readyz()
			return body["backlog"] == want
		}, deadline, 5*time.Millisecond, "backlog never %v: %v", want, body)
		return body
	}
	post := func(email string) (*http.Response, map[string]any) {
		resp, err := ts.Client().Post(ts.URL+"/signup", "application/json",
			strings.NewReader(`{"email": "`+email+`"}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp, out
	}

	// Six jobs waiting in a queue no worker of this server takes.
	_, err = db.Pool.Exec(context.Background(), `INSERT INTO river_job (kind, queue, state, args, scheduled_at)
		SELECT 'noop', 'elsewhere', 'available', '{}', now() - interval '90 seconds' FROM generate_series(1, 6)`)
	require.NoError(t, err)
	body := waitBacklog(6)
	require.Equal(t, "refused (backlog above --max-backlog)", body["signups"])
	require.GreaterOrEqual(t, body["backlog_oldest_age_seconds"], 90.0)

	resp, out := post("ada@example.com")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, out)
	require.Equal(t, "1", resp.Header.Get("Retry-After"), "the next count, rounded up to a second")
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Contains(t, out["error"], "overloaded: 6 jobs wait to run (more than --max-backlog 5)")
	var users int
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&users))
	require.Zero(t, users, "a refused signup writes nothing")

	metricsBody := func() string {
		resp, err := ts.Client().Get(ts.URL + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	m := metricsBody()
	require.Contains(t, m, "\njobsd_jobs_backlog 6\n")
	require.Contains(t, m, "\njobsd_signups_refused_total 1\n")
	require.Contains(t, m, "\njobsd_jobs_backlog_oldest_age_seconds ")

	_, err = db.Pool.Exec(context.Background(), `DELETE FROM river_job WHERE queue = 'elsewhere'`)
	require.NoError(t, err)
	body = waitBacklog(0)
	require.Equal(t, "accepted", body["signups"])
	resp, out = post("ada@example.com")
	require.Equal(t, http.StatusCreated, resp.StatusCode, out)

	// Refreshes ran all along: one warning for the one crossing, one Info
	// line when the backlog fell back below.
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "job backlog back below the warning threshold")
	}, deadline, 5*time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "job backlog above the warning threshold"), logs.String())
	require.Contains(t, logs.String(), "level=WARN msg=\"job backlog above the warning threshold")
}

// TestSignupWithoutMaxBacklog: with no limit (the default) a backlog never
// refuses a signup, and /readyz says nothing about signups.
func TestSignupWithoutMaxBacklog(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	srv, err := server.New(db.Pool, server.Config{HTTPAddr: "-", NoRelay: true,
		MetricsInterval: 20 * time.Millisecond, Logger: testLogger(t)})
	require.NoError(t, err)
	runServer(t, srv)
	_, err = db.Pool.Exec(context.Background(), `INSERT INTO river_job (kind, queue, state, args)
		SELECT 'noop', 'elsewhere', 'available', '{}' FROM generate_series(1, 20)`)
	require.NoError(t, err)
	var body map[string]any
	require.Eventually(t, func() bool {
		_, body = ready(t, srv.Handler())
		return body["backlog"] == 20.0
	}, deadline, 5*time.Millisecond)
	require.NotContains(t, body, "signups")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/signup", strings.NewReader(`{"email": "a@example.com"}`)))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
}
