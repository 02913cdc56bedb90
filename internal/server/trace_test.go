package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/internal/telemetry"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/internal/testlog"
	"github.com/jobsd/jobsd/relay"
)

// The incoming trace of the tests: a caller's span, as a W3C traceparent.
const (
	incomingTraceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID    = "00f067aa0ba902b7"
	incomingParent    = "00-" + incomingTraceID + "-" + incomingSpanID + "-01"
	incomingTraceSt   = "vendor=opaque"
	traceTestServices = 3 // jobs.DefaultServices: ride, pay, food
)

// TestTraceFromSignupToConsumer follows one signup through real Postgres and
// RabbitMQ with an in-process span recorder: the HTTP server span continues
// the incoming traceparent; the signup span, River's insert and the
// create_profile work spans, and the consumer's process span all belong to
// that trace; the relay's publish span links to it; and a line the consumer's
// handler logs inside the process span carries its trace and span ids.
func TestTraceFromSignupToConsumer(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	exchange, queue := b.Name("trace"), b.Name("trace-q")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr:       "-",
		AMQPURL:        b.URL,
		Relay:          relay.Config{Exchange: exchange, PollInterval: 100 * time.Millisecond},
		Logger:         quietLogger(),
		TracerProvider: tp,
	})
	require.NoError(t, err)

	var logs testlog.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, nil)))
	cons, err := consumer.New(db.Pool, b.URL, consumer.Config{
		Queue:          queue,
		Exchange:       exchange,
		Logger:         quietLogger(),
		TracerProvider: tp,
		Handler: consumer.Each(func(ctx context.Context, tx pgx.Tx, d consumer.Delivery) error {
			log.InfoContext(ctx, "handled", "message_id", d.MessageID)
			return consumer.AnalyticsHandler(ctx, tx, []consumer.Delivery{d})
		}),
	})
	require.NoError(t, err)
	runConsumer(t, cons)
	select { // the queue is bound before the event is published
	case <-cons.Ready():
	case <-time.After(time.Minute):
		t.Fatal("the consumer did not get ready")
	}
	runServer(t, srv)

	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	req, err := http.NewRequest(http.MethodPost, web.URL+"/signup", strings.NewReader(`{"email":"traced@example.com","name":"T"}`))
	require.NoError(t, err)
	req.Header.Set("traceparent", incomingParent)
	req.Header.Set("tracestate", incomingTraceSt)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	// The event carries the signup span's context, tracestate included.
	var headers map[string]string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT headers FROM outbox_event WHERE topic = 'user.signed_up'`).Scan(&headers))
	require.Contains(t, headers["traceparent"], "00-"+incomingTraceID+"-", headers)
	require.Equal(t, incomingTraceSt, headers["tracestate"], headers)

	// Wait for every span: the consumer's, the relay's, the three jobs'.
	ended := func(name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == name {
				out = append(out, s)
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		return len(ended("process "+queue)) == 1 && len(ended("publish "+exchange)) == 1 &&
			len(ended("river.work/create_profile")) == traceTestServices
	}, time.Minute, 10*time.Millisecond, "spans ended: %v", spanNames(rec.Ended()))

	want, err := trace.TraceIDFromHex(incomingTraceID)
	require.NoError(t, err)
	one := func(name string) sdktrace.ReadOnlySpan {
		t.Helper()
		spans := ended(name)
		require.Len(t, spans, 1, "spans named %q among %v", name, spanNames(rec.Ended()))
		return spans[0]
	}

	httpSpan := one("POST /signup")
	require.Equal(t, trace.SpanKindServer, httpSpan.SpanKind())
	require.Equal(t, want, httpSpan.SpanContext().TraceID())
	require.Equal(t, incomingSpanID, httpSpan.Parent().SpanID().String(), "the HTTP span continues the incoming span")

	signupSpan := one("signup")
	require.Equal(t, want, signupSpan.SpanContext().TraceID())
	require.Equal(t, httpSpan.SpanContext().SpanID(), signupSpan.Parent().SpanID())
	require.Equal(t, "00-"+incomingTraceID+"-"+signupSpan.SpanContext().SpanID().String()+"-01", headers["traceparent"],
		"the event carries the signup span's context")

	insert := one("river.insert_many")
	require.Equal(t, want, insert.SpanContext().TraceID())
	require.Equal(t, signupSpan.SpanContext().SpanID(), insert.Parent().SpanID())
	for _, work := range ended("river.work/create_profile") {
		require.Equal(t, want, work.SpanContext().TraceID(), "a create_profile job belongs to the signup's trace")
		require.Equal(t, insert.SpanContext().SpanID(), work.Parent().SpanID())
		require.Equal(t, trace.SpanKindConsumer, work.SpanKind())
	}

	publish := one("publish " + exchange)
	require.Equal(t, trace.SpanKindProducer, publish.SpanKind())
	require.Len(t, publish.Links(), 1)
	require.Equal(t, want, publish.Links()[0].SpanContext.TraceID(), "the publish span links to the event's context")
	require.Equal(t, signupSpan.SpanContext().SpanID(), publish.Links()[0].SpanContext.SpanID())
	requireAttrs(t, publish, map[string]string{
		"messaging.system":                           "rabbitmq",
		"messaging.operation.type":                   "send",
		"messaging.destination.name":                 exchange,
		"messaging.rabbitmq.destination.routing_key": "user.signed_up",
	})

	process := one("process " + queue)
	require.Equal(t, trace.SpanKindConsumer, process.SpanKind())
	require.Equal(t, want, process.SpanContext().TraceID(), "the consumer continues the event's trace")
	require.Equal(t, signupSpan.SpanContext().SpanID(), process.Parent().SpanID())
	require.True(t, process.Parent().IsRemote())
	requireAttrs(t, process, map[string]string{
		"messaging.system":                           "rabbitmq",
		"messaging.operation.type":                   "process",
		"messaging.destination.name":                 exchange,
		"messaging.consumer.group.name":              queue,
		"messaging.rabbitmq.destination.routing_key": "user.signed_up",
	})
	var msgID string
	for _, a := range process.Attributes() {
		if a.Key == "messaging.message.id" {
			msgID = a.Value.AsString()
		}
	}
	require.NotEmpty(t, msgID)
	for _, a := range publish.Attributes() {
		if a.Key == "messaging.message.id" {
			require.Equal(t, msgID, a.Value.AsString(), "publish and process name the same message")
		}
	}

	// The handler's log line, written inside the process span.
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line), logs.String())
	require.Equal(t, incomingTraceID, line["trace_id"], line)
	require.Equal(t, process.SpanContext().SpanID().String(), line["span_id"], line)
}

// TestTracingOffAddsNothing: with tracing off (a no-op provider, as when no
// OTEL_* variable is set), an incoming traceparent is not continued and the
// event gets no trace headers.
func TestTracingOffAddsNothing(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr:       "-",
		NoRelay:        true,
		Logger:         quietLogger(),
		TracerProvider: noop.NewTracerProvider(),
	})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/signup", strings.NewReader(`{"email":"untraced@example.com"}`))
	req.Header.Set("traceparent", incomingParent)
	srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var headers string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT headers::text FROM outbox_event WHERE topic = 'user.signed_up'`).Scan(&headers))
	require.Equal(t, "{}", headers)
	var metadata string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT metadata::text FROM river_job WHERE kind = 'create_profile' LIMIT 1`).Scan(&metadata))
	require.NotContains(t, metadata, "traceparent")
}

func requireAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, a := range s.Attributes() {
		got[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range want {
		require.Equal(t, v, got[k], "attribute %s of span %q: %v", k, s.Name(), got)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	return names
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// runConsumer runs c until the test ends and checks that Run returned nil.
func runConsumer(t *testing.T, c *consumer.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("consumer Run did not return after cancel")
		}
	})
}
