package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

const stoppingLine = "stopping; press Ctrl-C again to exit at once"

// TestServeSecondSignalExitsAtOnce: the first SIGTERM starts a stop that
// waits for running jobs (they take an hour, the shutdown timeout is ten
// minutes); a second SIGTERM ends the process at once, not successfully.
func TestServeSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p := testbin.Start(t, dbEnv(db.URL), "serve", "--http-addr", "127.0.0.1:0", "--no-relay",
		"--work-delay", "1h", "--shutdown-timeout", "10m")
	h := newHTTPClient(t, httpAddr(t, p))
	code, body := h.do("POST", "/signup", `{"email": "ada@example.com"}`)
	require.Equal(t, http.StatusCreated, code, body)
	var running int
	waitFor(t, "a running job", func() bool {
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE state = 'running'").Scan(&running))
		return running > 0
	}, p.Output)

	require.NoError(t, p.Signal(syscall.SIGTERM))
	waitFor(t, "the stopping line", func() bool { return strings.Contains(p.Output(), stoppingLine) }, p.Output)
	require.Nil(t, p.State(), "serve waits for its running jobs:\n%s", p.Output())

	require.NoError(t, p.Signal(syscall.SIGTERM))
	select {
	case <-p.Done():
	case <-time.After(deadline):
		t.Fatalf("a second SIGTERM did not end serve (its shutdown timeout is 10m):\n%s", p.Output())
	}
	require.False(t, p.State().Success(), "exit status %v", p.State())
	t.Logf("serve ended: %v", p.State())
}

// TestServeStopsWhileBrokerStalls: the broker stops answering (a proxy that
// keeps the connection open and forwards nothing) while the relay publishes.
// On SIGTERM serve still exits within --shutdown-timeout (plus generous
// slack): 0, or 1 naming the component it gave up on.
func TestServeStopsWhileBrokerStalls(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	proxy := b.NewProxy()
	const shutdownTimeout = 2 * time.Second
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + proxy.URL}
	p := testbin.Start(t, env, "serve", "--http-addr", "127.0.0.1:0", "--exchange", b.Name("stall"),
		"--relay-poll", "100ms", "--shutdown-timeout", shutdownTimeout.String())
	h := newHTTPClient(t, httpAddr(t, p))
	waitFor(t, "the relay to connect", func() bool {
		code, body := h.do("GET", "/readyz", "")
		return code == http.StatusOK && body["broker"] == "connected"
	}, p.Output)

	proxy.Stall()
	for i := range 20 {
		code, body := h.do("POST", "/signup", fmt.Sprintf(`{"email": "stall%d@example.com"}`, i))
		require.Equal(t, http.StatusCreated, code, body)
	}
	code, body := h.do("GET", "/readyz", "")
	require.Equal(t, http.StatusOK, code, "a stalled broker does not make serve unready: %v", body)

	require.NoError(t, p.Signal(syscall.SIGTERM))
	exit := p.Wait(shutdownTimeout + deadline)
	require.NotEqual(t, -1, exit, "serve did not stop within its shutdown timeout:\n%s", p.Output())
	t.Logf("serve exited with %d", exit)
	if exit != 0 {
		require.Equal(t, 1, exit, p.Output())
		require.Contains(t, p.Output(), "jobsd: shutdown timeout exceeded (2s): relay did not stop")
	}
	proxy.Cut()
}
