package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/consumer"
)

// TestProcessSpans: messages handled in one batch each get a "process
// <queue>" span, a child of the traceparent they carry; consumer.Each hands
// the handler each message's own span; a dead-lettered message's span is an
// error.
func TestProcessSpans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGate()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := b.config()
	cfg.Concurrency = 1
	cfg.TracerProvider = tp
	var mu sync.Mutex
	handledIn := map[string]trace.SpanContext{} // message id -> span context the handler saw
	cfg.Handler = g.wrap(consumer.Each(func(ctx context.Context, tx pgx.Tx, d consumer.Delivery) error {
		mu.Lock()
		handledIn[d.MessageID] = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return consumer.AnalyticsHandler(ctx, tx, []consumer.Delivery{d})
	}))
	c := start(t, b.db.Pool, b.broker.URL, cfg)

	parents := map[string]string{} // message id -> its traceparent's trace id
	var msgs []amqp.Publishing
	for i := range 3 {
		m := event(newID())
		traceID := fmt.Sprintf("%032x", i+1)
		m.Headers = amqp.Table{"traceparent": "00-" + traceID + "-00000000000000a" + fmt.Sprint(i+1) + "-01"}
		parents[m.MessageId] = traceID
		msgs = append(msgs, m)
	}
	malformed := event("not-a-uuid")
	malformed.Headers = amqp.Table{"traceparent": "00-" + fmt.Sprintf("%032x", 9) + "-00000000000000b9-01"}
	msgs = append(msgs, malformed)
	g.hold(t, b, msgs...) // one batch
	eventually(t, "5 deliveries settled", func() bool { return settled(c) == 5 })
	c.stop(t)

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		require.Equal(t, "process "+b.queue, s.Name())
		require.Equal(t, trace.SpanKindConsumer, s.SpanKind())
		for _, a := range s.Attributes() {
			if a.Key == "messaging.message.id" {
				spans[a.Value.AsString()] = s
			}
		}
	}
	require.Len(t, spans, 5, "one span per delivery, the gate's included")
	mu.Lock()
	defer mu.Unlock()
	for id, traceID := range parents {
		s := spans[id]
		require.NotNil(t, s, id)
		require.Equal(t, traceID, s.SpanContext().TraceID().String(), "a child of the message's traceparent")
		require.True(t, s.Parent().IsRemote())
		require.Len(t, s.Links(), 1)
		require.Equal(t, s.SpanContext(), handledIn[id], "Each passes the message's own span")
		require.Equal(t, codes.Unset, s.Status().Code)
	}
	bad := spans["not-a-uuid"]
	require.NotNil(t, bad)
	require.Equal(t, fmt.Sprintf("%032x", 9), bad.SpanContext().TraceID().String())
	require.Equal(t, codes.Error, bad.Status().Code)
	require.Contains(t, bad.Status().Description, "malformed")
	require.False(t, spans[g.msg.MessageId].Parent().IsValid(), "a message without traceparent starts a trace")
}
