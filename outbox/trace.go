package outbox

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/trace"
)

// The W3C trace-context headers. Write and WriteSQL store the caller's trace
// context in them (see Event.Headers); the relay publishes them as AMQP
// headers of the same names, and jobsd consume continues the trace.
const (
	TraceParentHeader = "traceparent"
	TraceStateHeader  = "tracestate"
)

// traceHeaders returns headers with the W3C trace context of the span in ctx
// added (traceparent, and tracestate when it is not empty), or headers itself
// when there is nothing to add: ctx holds no valid span context (tracing is
// off, or the caller is not in a span), the event already carries a
// traceparent or tracestate of its own (a producer that propagates its trace
// itself), or the headers would outgrow MaxHeadersBytes. size is the size of
// headers as JSON (see checkHeaders). The caller's map is never modified.
func traceHeaders(ctx context.Context, headers map[string]string, size int) map[string]string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return headers
	}
	if _, ok := headers[TraceParentHeader]; ok {
		return headers
	}
	if _, ok := headers[TraceStateHeader]; ok {
		return headers
	}
	parent := traceParent(sc)
	state := sc.TraceState().String()
	size += len(`"traceparent": ""`) + len(parent)
	if len(headers) > 0 {
		size += len(", ")
	}
	if state != "" {
		size += len(`, "tracestate": ""`) + escapedStringLen(state) - 2
	}
	if size > MaxHeadersBytes {
		return headers
	}
	h := make(map[string]string, len(headers)+2)
	maps.Copy(h, headers)
	h[TraceParentHeader] = parent
	if state != "" {
		h[TraceStateHeader] = state
	}
	return h
}

// traceParent formats sc as a W3C traceparent header (version 00).
func traceParent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
