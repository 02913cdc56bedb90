package relay

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/telemetry"
)

// tracerName names the relay's tracer (the instrumentation scope).
const tracerName = "github.com/jobsd/jobsd/relay"

// tracing is the relay's OpenTelemetry state (telemetry.Tracing): a nil
// Tracer means tracing is off, and the relay then does nothing per message.
type tracing = telemetry.Tracing

func newTracing(tp trace.TracerProvider) tracing { return telemetry.NewTracing(tp, tracerName) }

// startPublish starts the "publish <exchange>" span of rw (kind producer,
// OpenTelemetry's messaging conventions), or returns nil when tracing is off.
//
// The event's own trace context, the traceparent header that outbox.Write
// stored from its caller's span (or that a plain-SQL producer set), is the
// message's creation context: msg carries it unchanged to the consumers, and
// the publish span links to it. The publish span starts a trace of its own:
// the relay publishes whenever the event's turn comes (the broker may have
// been down for an hour), not as a step of the request that wrote it. An
// event without a trace context gets the publish span's context as its
// traceparent, so that the consumer still continues a trace.
func (u *run) startPublish(rw *row, msg *amqp.Publishing) trace.Span {
	if u.trace.Tracer == nil {
		return nil
	}
	carrier := telemetry.AMQPCarrier(msg.Headers)
	creation := trace.SpanContextFromContext(u.trace.Propagator.Extract(context.Background(), carrier))
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "rabbitmq"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "publish"),
			attribute.String("messaging.destination.name", u.cfg.Exchange),
			attribute.String("messaging.rabbitmq.destination.routing_key", rw.Topic),
			attribute.String("messaging.message.id", rw.MessageID),
			attribute.Int("messaging.message.body.size", len(msg.Body)),
			attribute.Int64("jobsd.outbox.event_id", rw.ID),
			attribute.Int("jobsd.outbox.attempt", rw.Attempt+1),
		),
	}
	if creation.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: creation}))
	}
	ctx, span := u.trace.Tracer.Start(context.Background(), "publish "+u.cfg.Exchange, opts...)
	if !creation.IsValid() && msg.Headers != nil {
		u.trace.Propagator.Inject(ctx, carrier)
	}
	return span
}

// endPublish ends span (nil when tracing is off): ok when the broker
// confirmed the message, an error saying why otherwise.
func endPublish(span trace.Span, failure string) {
	if span == nil {
		return
	}
	if failure != "" {
		span.SetStatus(codes.Error, failure)
		span.SetAttributes(attribute.String("error.type", "publish_failed"))
	}
	span.End()
}

// spanContext returns a context holding span, or the background context when
// span is nil.
func spanContext(span trace.Span) context.Context {
	if span == nil {
		return context.Background()
	}
	return trace.ContextWithSpan(context.Background(), span)
}
