package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
)

// serveHTTP serves s's HTTP server (with its configured timeouts) on a
// loopback port until the test ends and returns the address.
func serveHTTP(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := s.httpServer()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// dial opens a raw connection to addr whose reads fail after a minute, a
// limit only a broken server reaches.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
	return conn
}

// requireCut reads from r until the server closes the connection, failing
// the test if the client's own read deadline comes first.
func requireCut(t *testing.T, r io.Reader) string {
	t.Helper()
	var got strings.Builder
	_, err := io.Copy(&got, r)
	var netErr net.Error
	require.False(t, errors.As(err, &netErr) && netErr.Timeout(),
		"the server did not close the connection (read %q)", got.String())
	return got.String()
}

// TestHTTPTimeoutsCutSlowClients: with small timeouts, a client that sends
// its headers, or its body, slower than the read timeout, and a keep-alive
// connection left idle, are cut off by the server.
func TestHTTPTimeoutsCutSlowClients(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	s, err := New(db.Pool, Config{
		NoRelay:           true,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReadHeaderTimeout: 200 * time.Millisecond,
		ReadTimeout:       300 * time.Millisecond,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       300 * time.Millisecond,
	})
	require.NoError(t, err)
	addr := serveHTTP(t, s)

	t.Run("body dribbled slower than the read timeout", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "POST /signup HTTP/1.1\r\nHost: jobsd\r\nContent-Type: application/json\r\n"+
			"Content-Length: 100000\r\n\r\n{\"email\": ")
		require.NoError(t, err)
		stop := make(chan struct{})
		dribbled := make(chan struct{})
		go func() { // one byte of whitespace every 20ms, until the server hangs up
			defer close(dribbled)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		got := requireCut(t, conn)
		close(stop)
		<-dribbled
		require.True(t, strings.HasPrefix(got, "HTTP/1.1 408 "), "want 408, got %q", got)
		require.Contains(t, got, "read timeout")
	})

	t.Run("headers dribbled slower than the header timeout", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: jobsd\r\n") // never finished
		require.NoError(t, err)
		got := requireCut(t, conn)
		require.NotContains(t, got, "200 OK")
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: jobsd\r\n\r\n")
		require.NoError(t, err)
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "the connection is kept alive after the first request")
		require.Empty(t, requireCut(t, r), "nothing more arrives before the server closes the idle connection")
	})
}

// TestHTTPTimeoutDefaults: zero takes the documented defaults, a negative
// value disables the timeout (http.Server's own meaning of negative).
func TestHTTPTimeoutDefaults(t *testing.T) {
	t.Parallel()
	c := Config{WriteTimeout: -1}.withDefaults()
	require.Equal(t, ReadHeaderTimeoutDefault, c.ReadHeaderTimeout)
	require.Equal(t, ReadTimeoutDefault, c.ReadTimeout)
	require.Equal(t, IdleTimeoutDefault, c.IdleTimeout)
	require.Equal(t, time.Duration(-1), c.WriteTimeout)
}

// TestJobsShare: running jobs get all but a fifth of the shutdown timeout,
// and at most all but 5s; the rest is left to cancel them and stop the relay.
func TestJobsShare(t *testing.T) {
	t.Parallel()
	require.Equal(t, 25*time.Second, jobsShare(30*time.Second))
	require.Equal(t, 8*time.Second, jobsShare(10*time.Second))
	require.Equal(t, 4*time.Second, jobsShare(5*time.Second))
	require.Equal(t, 595*time.Second, jobsShare(10*time.Minute))
}

// TestBrokerState: how /readyz names the relay's broker. (A real blocked
// broker needs a resource alarm on the shared RabbitMQ, which tests must not
// raise.)
func TestBrokerState(t *testing.T) {
	t.Parallel()
	require.Equal(t, "connected", brokerState(true, false))
	require.Equal(t, "blocked", brokerState(true, true))
	require.Equal(t, "disconnected", brokerState(false, false))
	require.Equal(t, "disconnected", brokerState(false, true))
}

func TestReadinessGrace(t *testing.T) {
	t.Parallel()
	require.Equal(t, 5*time.Second, readinessGrace(ReadinessGraceDefault, ShutdownTimeoutDefault))
	require.Equal(t, time.Second, readinessGrace(5*time.Second, 2*time.Second), "at most half the shutdown timeout")
	require.Equal(t, time.Duration(0), readinessGrace(-1, ShutdownTimeoutDefault), "negative disables")
}
