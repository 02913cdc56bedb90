package main

import (
	"bytes"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
)

// TestTracingVariables: an OTEL_* value jobsd does not support is a usage
// error, before anything connects.
func TestTracingVariables(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"OTEL_TRACES_EXPORTER=zipkin"}, []string{"serve"}, `OTEL_TRACES_EXPORTER="zipkin"`},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"}, []string{"consume", "--queue", "q"}, `OTLP protocol "http/json"`},
	} {
		res := testbin.Run(t, opsEnv(append(tc.env, "DATABASE_URL=postgres://127.0.0.1:1/none")...), tc.args...)
		requireOneLineError(t, res, exitUsage, tc.want)
	}
}

// TestServeConsoleTracing: OTEL_TRACES_EXPORTER=console makes serve continue
// an incoming traceparent and write the spans to stderr, flushed at exit.
func TestServeConsoleTracing(t *testing.T) {
	t.Parallel()
	d := newOpsDB(t)
	p, base := startServe(t, append(d.env, "OTEL_TRACES_EXPORTER=console"), "--no-relay")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest(http.MethodPost, base+"/signup", bytes.NewBufferString(`{"email":"console@example.com"}`))
	require.NoError(t, err)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NoError(t, p.Signal(syscall.SIGINT))
	require.Equal(t, 0, p.Wait(time.Minute), p.Output())
	out := p.Output()
	require.Contains(t, out, "tracing on (OpenTelemetry)")
	for _, name := range []string{"POST /signup", "signup", "river.insert_many"} {
		var found bool
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, `{"Name":"`+name+`"`) && strings.Contains(line, `"TraceID":"`+traceID+`"`) {
				found = true
			}
		}
		require.True(t, found, "span %q of trace %s on stderr:\n%s", name, traceID, out)
	}
}
