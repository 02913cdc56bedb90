// Package telemetry sets up OpenTelemetry tracing for jobsd's commands: a
// TracerProvider built from the standard OTEL_* environment variables (see
// Setup), the W3C trace-context and baggage propagator, a slog handler that
// adds the trace and span ids to the log lines written inside a span, and a
// carrier that reads and writes trace context in AMQP headers.
//
// Tracing is off unless the environment turns it on: Setup then installs
// nothing, the global providers stay OpenTelemetry's no-op ones, and Enabled
// tells the relay and the consumer to skip every per-message step.
//
// It may import OpenTelemetry's API, SDK and exporters, and amqp091-go.
package telemetry
