package telemetry

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// initialGlobal is OpenTelemetry's global TracerProvider before anything
// installed one: a no-op that would only forward to a provider installed
// later.
var initialGlobal = otel.GetTracerProvider()

// Provider returns tp, or OpenTelemetry's global TracerProvider when tp is
// nil, and whether spans started with it can be recorded at all: false for
// the no-op providers and for the global one while no provider has been
// installed (the default when the OTEL_* variables leave tracing off).
// Components decide it once, when they are built, and then skip every
// per-message step while it is false.
func Provider(tp trace.TracerProvider) (trace.TracerProvider, bool) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return tp, false
	}
	if tp == initialGlobal && otel.GetTracerProvider() == initialGlobal {
		return tp, false
	}
	return tp, true
}

// Tracing is what a component needs to trace per message: its tracer and the
// propagator. A nil Tracer means tracing is off, and the component then does
// nothing per message.
type Tracing struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
}

// NewTracing is the Tracing of a component with instrumentation scope name on
// tp (see Provider): the zero Tracing when spans could not be recorded.
func NewTracing(tp trace.TracerProvider, name string) Tracing {
	tp, on := Provider(tp)
	if !on {
		return Tracing{}
	}
	return Tracing{Tracer: tp.Tracer(name), Propagator: Propagator()}
}
