package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testdb"
)

// poolFor opens a pool on url, closed when t ends.
func poolFor(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// waitFor polls cond until it holds, failing the test at the deadline. what
// describes the awaited state; status, if not nil, says what was seen instead.
func waitFor(t *testing.T, what string, cond func() bool, status func() string) {
	t.Helper()
	stop := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(stop) {
			msg := "timed out waiting for " + what
			if status != nil {
				msg += "; " + status()
			}
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var listeningRE = regexp.MustCompile(`msg="http listening" (?:\S+ )*?addr=(\S+)`)

// httpAddr waits until p logs the address it listens on and returns it.
func httpAddr(t *testing.T, p *testbin.Process) string {
	t.Helper()
	var addr string
	waitFor(t, "jobsd serve to listen", func() bool {
		select {
		case <-p.Done():
			t.Fatalf("jobsd serve exited before listening:\n%s", p.Output())
		default:
		}
		if m := listeningRE.FindStringSubmatch(p.Output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, p.Output)
	return addr
}

type httpClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newHTTPClient(t *testing.T, addr string) *httpClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &httpClient{t: t, base: "http://" + addr, c: &http.Client{Transport: tr, Timeout: deadline}}
}

// do sends a request and returns the status and the decoded JSON body.
func (h *httpClient) do(method, path, body string) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	require.NoError(h.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.c.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	var out map[string]any
	if resp.StatusCode != http.StatusMethodNotAllowed {
		require.Equal(h.t, "application/json", resp.Header.Get("Content-Type"))
		require.NoError(h.t, json.NewDecoder(bytes.NewReader(raw)).Decode(&out), "body %q", raw)
	}
	return resp.StatusCode, out
}

func TestServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	p := testbin.Start(t, dbEnv(db.URL), "serve", "--http-addr", "127.0.0.1:0", "--no-relay")
	h := newHTTPClient(t, httpAddr(t, p))

	code, body := h.do("GET", "/healthz", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])
	code, body = h.do("GET", "/readyz", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["database"])

	code, body = h.do("POST", "/signup", `{"email": "Ada@Example.com", "name": "Ada"}`)
	require.Equal(t, http.StatusCreated, code, body)
	user := body["user"].(map[string]any)
	require.Equal(t, "ada@example.com", user["email"])
	userID := int64(user["id"].(float64))
	require.Len(t, body["job_ids"], 3)
	require.Positive(t, body["event_id"])

	bad := []struct{ name, body, want string }{
		{"malformed JSON", `{"email": "grace@example.com"`, "malformed JSON body"},
		{"not an object", `["grace@example.com"]`, "malformed JSON body"},
		{"unknown field", `{"email": "grace@example.com", "admin": true}`, "malformed JSON body"},
		{"empty body", ``, "malformed JSON body"},
		{"invalid email", `{"email": "not-an-email"}`, "is not an email address"},
		{"missing email", `{"name": "Grace"}`, "email is empty"},
	}
	for _, tt := range bad {
		code, body := h.do("POST", "/signup", tt.body)
		require.Equal(t, http.StatusBadRequest, code, tt.name)
		require.Contains(t, body["error"], tt.want, tt.name)
	}
	code, body = h.do("POST", "/signup", `{"email": "ada@example.com", "name": "Ada again"}`)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body["error"], "already exists")
	code, _ = h.do("GET", "/signup", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)

	// The workers create the three profiles.
	var profiles, completed int
	waitFor(t, "3 profiles and 3 completed jobs", func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM profiles WHERE user_id = $1),
			(SELECT count(*) FROM river_job WHERE state = 'completed' AND (args->>'user_id')::bigint = $1)`,
			userID).Scan(&profiles, &completed)
		require.NoError(t, err)
		return profiles == 3 && completed == 3
	}, func() string { return fmt.Sprintf("profiles %d, completed %d", profiles, completed) })
	var users int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users))
	require.Equal(t, 1, users, "only the valid signup was written")

	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline), p.Output())
	require.Contains(t, p.Output(), "stopped")
}

// TestServeFaults: with --fail-attempts 1 every job fails once and succeeds on
// its retry; with --fail-service food the food job is discarded after
// --max-attempts.
func TestServeFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	p := testbin.Start(t, dbEnv(db.URL), "serve", "--http-addr", "127.0.0.1:0", "--no-relay",
		"--fail-attempts", "1", "--fail-service", "food", "--max-attempts", "2")
	h := newHTTPClient(t, httpAddr(t, p))
	code, body := h.do("POST", "/signup", `{"email": "ada@example.com"}`)
	require.Equal(t, http.StatusCreated, code, body)

	type jobRow struct {
		service, state string
		attempt        int
	}
	var jobs []jobRow
	waitFor(t, "ride and pay completed, food discarded", func() bool {
		rows, err := db.Pool.Query(ctx, "SELECT args->>'service', state, attempt FROM river_job ORDER BY args->>'service'")
		require.NoError(t, err)
		defer rows.Close()
		jobs = nil
		for rows.Next() {
			var j jobRow
			require.NoError(t, rows.Scan(&j.service, &j.state, &j.attempt))
			jobs = append(jobs, j)
		}
		require.NoError(t, rows.Err())
		return len(jobs) == 3 && jobs[0].state == "discarded" && jobs[1].state == "completed" && jobs[2].state == "completed"
	}, func() string { return fmt.Sprintf("jobs: %+v", jobs) })
	require.Equal(t, []jobRow{{"food", "discarded", 2}, {"pay", "completed", 2}, {"ride", "completed", 2}}, jobs)

	var services []string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT array_agg(service ORDER BY service) FROM profiles").Scan(&services))
	require.Equal(t, []string{"pay", "ride"}, services)

	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline), p.Output())
}
