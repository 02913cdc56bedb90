package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/telemetry"
)

// riverMiddleware is River's tracing middleware when tracing is on, nil
// otherwise: continueJobTrace, then otelriver's, which gives each insert a
// river.insert_many span (kind producer) that stores its trace context in the
// jobs' metadata, and each job attempt a river.work/<kind> span (kind
// consumer) linked to it.
func riverMiddleware(tp trace.TracerProvider, on bool) []rivertype.Middleware {
	if !on {
		return nil
	}
	return []rivertype.Middleware{
		&continueJobTrace{},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			TracerProvider:              tp,
			MeterProvider:               metricnoop.NewMeterProvider(), // metrics are Prometheus' (internal/metrics)
			EnableTracePropagation:      true,
			EnableWorkSpanJobKindSuffix: true,
		}),
	}
}

// continueJobTrace makes a job's work span a child of the span that inserted
// the job (the trace context otelriver stored in the job's metadata), not
// only linked to it as otelriver does: a create_profile job belongs to the
// trace of the signup request that inserted it. It must come before
// otelriver's middleware.
type continueJobTrace struct {
	river.MiddlewareDefaults
}

func (*continueJobTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if len(job.Metadata) == 0 || trace.SpanContextFromContext(ctx).IsValid() {
		return doInner(ctx)
	}
	var meta map[string]any
	if err := json.Unmarshal(job.Metadata, &meta); err != nil {
		return doInner(ctx)
	}
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v, ok := meta[k].(string); ok {
			carrier[k] = v
		}
	}
	return doInner(propagation.TraceContext{}.Extract(ctx, carrier))
}

// traceHTTP wraps the handler of route in an otelhttp server span when
// tracing is on: it continues an incoming W3C traceparent, or starts a trace.
func (s *Server) traceHTTP(route string, h http.HandlerFunc) http.Handler {
	if !s.tracing {
		return h
	}
	return otelhttp.NewHandler(h, route,
		otelhttp.WithTracerProvider(s.tracerProvider),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithPropagators(telemetry.Propagator()),
	)
}
