package consumer

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/telemetry"
)

// tracerName names the consumer's tracer (the instrumentation scope).
const tracerName = "github.com/jobsd/jobsd/consumer"

// tracing is the consumer's OpenTelemetry state (telemetry.Tracing): a nil
// Tracer means tracing is off, and the consumer then does nothing per message.
type tracing = telemetry.Tracing

func newTracing(tp trace.TracerProvider) tracing { return telemetry.NewTracing(tp, tracerName) }

// Context returns ctx with the message's "process <queue>" span, in which
// the consumer processes it when tracing is on (a child of the trace context
// the message carries in its traceparent header), so that what a Handler does
// and logs with that ctx belongs to the message's trace. Without tracing it
// returns ctx. Each passes it to its function.
func (d Delivery) Context(ctx context.Context) context.Context {
	if d.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, d.span)
}

// startSpans starts the "process <queue>" span (kind consumer, OpenTelemetry's
// messaging conventions) of each delivery of batch into w.spans, by delivery
// tag. A delivery's span is a child of the trace context in its headers (the
// outbox event's: the trace of the request that wrote it), with a link to it;
// a delivery without one starts a trace. Each message gets its own span, also
// when several are handled in one transaction: the spans of a batch end
// together, when the batch is settled.
func (w *worker) startSpans(batch []amqp.Delivery) {
	t := w.c.trace
	if w.spans == nil {
		w.spans = make(map[uint64]trace.Span, len(batch))
	}
	for i := range batch {
		d := &batch[i]
		parent := t.Propagator.Extract(context.Background(), telemetry.AMQPCarrier(d.Headers))
		opts := []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "rabbitmq"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.operation.name", "process"),
				attribute.String("messaging.destination.name", d.Exchange),
				attribute.String("messaging.consumer.group.name", w.c.cfg.Queue),
				attribute.String("messaging.rabbitmq.destination.routing_key", d.RoutingKey),
				attribute.String("messaging.message.id", d.MessageId),
				attribute.Int64("messaging.rabbitmq.message.delivery_tag", int64(d.DeliveryTag)),
				attribute.Int("messaging.message.body.size", len(d.Body)),
				attribute.Int("messaging.batch.message_count", len(batch)),
			),
		}
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		_, span := t.Tracer.Start(parent, "process "+w.c.cfg.Queue, opts...)
		w.spans[d.DeliveryTag] = span
	}
}

// spanOf returns d's processing span, or nil.
func (w *worker) spanOf(d *amqp.Delivery) trace.Span {
	if w.spans == nil {
		return nil
	}
	return w.spans[d.DeliveryTag]
}

// spanContext returns ctx with d's processing span, if it has one.
func (w *worker) spanContext(ctx context.Context, d *amqp.Delivery) context.Context {
	if span := w.spanOf(d); span != nil {
		return trace.ContextWithSpan(ctx, span)
	}
	return ctx
}

// failSpan marks d's processing span as failed.
func (w *worker) failSpan(d *amqp.Delivery, why error) {
	if span := w.spanOf(d); span != nil {
		span.SetStatus(codes.Error, why.Error())
	}
}

// endSpans ends the spans of the batch just settled.
func (w *worker) endSpans() {
	for tag, span := range w.spans {
		span.End()
		delete(w.spans, tag)
	}
}
