package main

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

var consumeListeningRE = regexp.MustCompile(`msg="consumer HTTP listening" (?:\S+ )*?addr=(\S+)`)

// consumeHTTPAddr waits until p logs the address its HTTP server listens on.
func consumeHTTPAddr(t *testing.T, p *testbin.Process) string {
	t.Helper()
	var addr string
	waitFor(t, "jobsd consume to listen", func() bool {
		select {
		case <-p.Done():
			t.Fatalf("jobsd consume exited before listening:\n%s", p.Output())
		default:
		}
		if m := consumeListeningRE.FindStringSubmatch(p.Output()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, p.Output)
	return addr
}

// metricValue returns the value of the sample named series (name and labels,
// as the text format writes them) in body, or -1 when it is absent.
func metricValue(body, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestConsumeHTTP: consume --http-addr serves the consumer's metrics (every
// result counter at 0 before the first message), /healthz, and a /readyz that
// follows the broker connection.
func TestConsumeHTTP(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	proxy := b.NewProxy()
	exchange, queue := b.Name("x"), b.Name("q")
	p := testbin.Start(t, []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + proxy.URL},
		"consume", "--queue", queue, "--exchange", exchange, "--http-addr", "127.0.0.1:0", "--retry-backoff", "50ms")
	base := "http://" + consumeHTTPAddr(t, p)
	waitConsumers(t, b, queue, p)

	code, _ := get(t, base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	var ready string
	waitFor(t, "/readyz 200", func() bool {
		code, ready = get(t, base+"/readyz", "", "")
		return code == http.StatusOK
	}, func() string { return ready })
	require.JSONEq(t, `{"status":"ready","broker":"connected","database":"ok"}`, ready)

	series := func(result string) string {
		return fmt.Sprintf(`jobsd_consumer_messages_total{queue=%q,result=%q}`, queue, result)
	}
	_, body := get(t, base+"/metrics", "", "")
	for _, result := range []string{"processed", "duplicate", "rejected", "requeued"} {
		require.Zero(t, metricValue(body, series(result)), "%s at 0 before any message:\n%s", result, body)
	}
	require.Zero(t, metricValue(body, fmt.Sprintf(`jobsd_consumer_retries_total{queue=%q,reason="database"}`, queue)))
	require.Zero(t, metricValue(body, fmt.Sprintf(`jobsd_consumer_batch_duration_seconds_count{queue=%q}`, queue)))
	require.Zero(t, metricValue(body, fmt.Sprintf(`jobsd_consumer_lag_seconds_count{queue=%q}`, queue)))
	require.Regexp(t, `(?m)^jobsd_build_info\{commit="[^"]+",go_version="go[^"]+",version="[^"]+"\} 1$`, body)
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "process_open_fds")

	// 10 events and one without a message id (dead-lettered).
	msgs := consumeEvents(10)
	msgs = append(msgs, amqp.Publishing{Type: "user.signed_up", Body: []byte(`{}`)})
	consumePublish(t, b, exchange, msgs)
	waitFor(t, "the messages counted in /metrics", func() bool {
		_, body = get(t, base+"/metrics", "", "")
		return metricValue(body, series("processed")) == 10 && metricValue(body, series("rejected")) == 1
	}, func() string { return body })
	require.Positive(t, metricValue(body, fmt.Sprintf(`jobsd_consumer_batch_duration_seconds_count{queue=%q}`, queue)))
	require.EqualValues(t, 10, metricValue(body, fmt.Sprintf(`jobsd_consumer_lag_seconds_count{queue=%q}`, queue)))

	// The broker goes away: not ready, saying why; back: ready again.
	proxy.Refuse(true)
	proxy.Cut()
	waitFor(t, "/readyz 503", func() bool {
		code, ready = get(t, base+"/readyz", "", "")
		return code == http.StatusServiceUnavailable
	}, func() string { return ready })
	require.JSONEq(t, `{"status":"not ready","broker":"disconnected","database":"ok"}`, ready)
	code, _ = get(t, base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code, "alive without the broker")
	proxy.Refuse(false)
	waitFor(t, "/readyz 200 after the broker is back", func() bool {
		code, ready = get(t, base+"/readyz", "", "")
		return code == http.StatusOK
	}, func() string { return ready })

	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(consumeTestTimeout), p.Output())
}

// TestConsumeHTTPAddrInvalid: a malformed --http-addr is a usage error, before
// anything connects.
func TestConsumeHTTPAddrInvalid(t *testing.T) {
	t.Parallel()
	res := testbin.Run(t, []string{"DATABASE_URL=postgres://127.0.0.1:1/none", "AMQP_URL=amqp://127.0.0.1:1/"},
		"consume", "--queue", "q", "--http-addr", "localhost")
	require.Equal(t, exitUsage, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, `jobsd: --http-addr "localhost": want host:port, a port, or - to disable`)
}

// TestConsumeHTTPPortInUse: an address already taken is a clear error, exit 1.
func TestConsumeHTTPPortInUse(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	res := testbin.Run(t, []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL},
		"consume", "--queue", b.Name("q"), "--exchange", b.Name("x"), "--http-addr", ln.Addr().String())
	require.Equal(t, exitFailure, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, "listen on "+ln.Addr().String())
	require.Contains(t, res.Stderr, "use --http-addr")
}
