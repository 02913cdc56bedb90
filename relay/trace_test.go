package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobsd/jobsd/internal/telemetry"
	"github.com/jobsd/jobsd/internal/testlog"
)

// TestRelayTraceHeaders: with tracing on, an event's own traceparent (here
// set by a plain-SQL producer through outbox_write) reaches the consumer
// unchanged, tracestate included, and the publish span links to it; an event
// without one gets the publish span's context. With tracing off the relay
// adds nothing.
func TestRelayTraceHeaders(t *testing.T) {
	t.Parallel()
	const (
		producerTrace  = "0af7651916cd43dd8448eb211c80319c"
		producerParent = "00-" + producerTrace + "-b7ad6b7169203331-01"
	)
	writeEvents := func(t *testing.T, h *harness) {
		t.Helper()
		_, err := h.db.Pool.Exec(context.Background(), `SELECT outbox_write('test.traced', 'a', '{}', $1),
			outbox_write('test.untraced', 'b', '{}')`,
			`{"traceparent": "`+producerParent+`", "tracestate": "congo=t61rcWkgMzE"}`)
		require.NoError(t, err)
	}
	byType := func(h *harness) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, d := range h.got.snapshot() {
			out[d.Type] = d.Headers
		}
		return out
	}

	t.Run("on", func(t *testing.T) {
		t.Parallel()
		h := setup(t, harnessOpts{})
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		cfg := h.config()
		cfg.TracerProvider = tp
		h.start(h.broker.URL, cfg)
		writeEvents(t, h)
		h.got.waitDistinct(t, 2)
		require.Eventually(t, func() bool { return len(rec.Ended()) == 2 }, waitTimeout, 5*time.Millisecond)

		got := byType(h)
		require.Equal(t, producerParent, got["test.traced"]["traceparent"], "a producer's traceparent is never overwritten")
		require.Equal(t, "congo=t61rcWkgMzE", got["test.traced"]["tracestate"])
		spans := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			for _, a := range s.Attributes() {
				if a.Key == "messaging.rabbitmq.destination.routing_key" {
					spans[a.Value.AsString()] = s
				}
			}
		}
		traced, untraced := spans["test.traced"], spans["test.untraced"]
		require.NotNil(t, traced)
		require.NotNil(t, untraced)
		for _, s := range []sdktrace.ReadOnlySpan{traced, untraced} {
			require.Equal(t, "publish "+h.exchange, s.Name())
			require.Equal(t, trace.SpanKindProducer, s.SpanKind())
			require.False(t, s.Parent().IsValid(), "the publish span starts a trace of its own")
		}
		require.Len(t, traced.Links(), 1)
		require.Equal(t, producerTrace, traced.Links()[0].SpanContext.TraceID().String())
		require.Empty(t, untraced.Links())
		sc := untraced.SpanContext()
		require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", got["test.untraced"]["traceparent"],
			"an event without a trace context carries the publish span's")
	})

	t.Run("a failure is logged inside the publish span", func(t *testing.T) {
		t.Parallel()
		h := setup(t, harnessOpts{noQueue: true})
		rec := tracetest.NewSpanRecorder()
		var logs testlog.Buffer
		cfg := h.config()
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		cfg.Mandatory = true // no queue: the broker returns the message
		cfg.MaxAttempts = 1
		cfg.Logger = slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, nil)))
		h.start(h.broker.URL, cfg)
		writeEvents(t, h)
		require.Eventually(t, func() bool { return len(rec.Ended()) == 2 }, waitTimeout, 5*time.Millisecond)
		spanIDs := map[string]bool{}
		for _, s := range rec.Ended() {
			require.Equal(t, codes.Error, s.Status().Code)
			require.Contains(t, s.Status().Description, "returned by the broker")
			spanIDs[s.SpanContext().SpanID().String()] = true
		}
		var failures int
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			if rec["msg"] == "publish failed" {
				failures++
				require.True(t, spanIDs[fmt.Sprint(rec["span_id"])], "logged inside its publish span: %v", rec)
			}
		}
		require.Equal(t, 2, failures, logs.String())
	})

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		h := setup(t, harnessOpts{})
		cfg := h.config()
		cfg.TracerProvider = noop.NewTracerProvider()
		h.start(h.broker.URL, cfg)
		writeEvents(t, h)
		h.got.waitDistinct(t, 2)
		got := byType(h)
		require.Equal(t, producerParent, got["test.traced"]["traceparent"], "headers are copied as they are")
		require.NotContains(t, got["test.untraced"], "traceparent")
	})
}

// TestPublishSpanOffAllocatesNothing: with tracing off the per-message
// tracing step allocates nothing (and with it on, the test logs what one
// publish span costs). Not parallel: testing.AllocsPerRun refuses to run in
// a parallel test.
func TestPublishSpanOffAllocatesNothing(t *testing.T) {
	rw := &row{ID: 1, MessageID: "00000000-0000-0000-0000-000000000001", Topic: "user.signed_up", Key: "1",
		Payload: []byte(`{}`), Headers: []byte(`{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)}
	msg, err := encode(rw, Config{}.WithDefaults().envelope())
	require.NoError(t, err)
	off := &run{Relay: &Relay{cfg: Config{Exchange: "analytics"}, trace: newTracing(noop.NewTracerProvider())}}
	require.Zero(t, testing.AllocsPerRun(100, func() { endPublish(off.startPublish(rw, &msg), "") }))

	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	on := &run{Relay: &Relay{cfg: Config{Exchange: "analytics"}, trace: newTracing(tp)}}
	allocs := testing.AllocsPerRun(100, func() { endPublish(on.startPublish(rw, &msg), "") })
	t.Logf("tracing on: %.0f allocations per publish span (no exporter)", allocs)
}
