package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ShutdownTimeout bounds the flush of the spans still buffered when a command
// exits.
const ShutdownTimeout = 5 * time.Second

// ServiceNameDefault is service.name when OTEL_SERVICE_NAME (or service.name
// in OTEL_RESOURCE_ATTRIBUTES) does not set it.
const ServiceNameDefault = "jobsd"

// ErrConfig is wrapped by the errors of Setup about the OTEL_* variables.
var ErrConfig = errors.New("invalid OpenTelemetry configuration")

// Config configures Setup.
type Config struct {
	// ServiceName is service.name unless the environment sets it. Default
	// ServiceNameDefault.
	ServiceName string

	// Console receives the spans of OTEL_TRACES_EXPORTER=console, one JSON
	// document each. Default os.Stderr (stdout is the commands' output).
	Console io.Writer

	// Logger receives the errors of the exporters (a collector that cannot
	// be reached, ...). Default slog.Default().
	Logger *slog.Logger
}

// Setup reads the OTEL_* environment variables and, when they turn tracing
// on, builds a TracerProvider, installs it and the W3C propagator
// (tracecontext and baggage) as OpenTelemetry's globals and returns it with a
// shutdown function that flushes the buffered spans within ShutdownTimeout.
//
// Tracing is on when OTEL_SDK_DISABLED is not "true" and either
// OTEL_TRACES_EXPORTER names exporters (otlp, console; comma-separated) or,
// OTEL_TRACES_EXPORTER being unset, an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The
// OTLP protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the default) or grpc; the
// exporters read their other variables (endpoint, headers, timeout, TLS)
// themselves, the SDK reads OTEL_TRACES_SAMPLER and OTEL_BSP_*, and the
// resource comes from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
//
// Otherwise (the default, and OTEL_TRACES_EXPORTER=none) Setup installs
// nothing and returns a nil provider and a shutdown that does nothing. An
// error wraps ErrConfig when a variable has a value it does not support.
func Setup(ctx context.Context, cfg Config) (trace.TracerProvider, func(), error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = ServiceNameDefault
	}
	if cfg.Console == nil {
		cfg.Console = os.Stderr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names, err := exporterNames()
	if err != nil || len(names) == 0 {
		return nil, func() {}, err
	}
	var opts []sdktrace.TracerProviderOption
	var exporters []sdktrace.SpanExporter
	for _, name := range names {
		exp, err := newExporter(ctx, name, cfg.Console)
		if err != nil {
			for _, e := range exporters {
				_ = e.Shutdown(ctx)
			}
			return nil, func() {}, err
		}
		exporters = append(exporters, exp)
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: after the default, so they win
	)
	if err != nil && res == nil {
		return nil, func() {}, fmt.Errorf("%w: resource: %v", ErrConfig, err)
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	log := cfg.Logger
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: exporting spans failed", "err", err)
	}))
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: flushing the last spans failed", "err", err, "timeout", ShutdownTimeout)
		}
	}
	return tp, shutdown, nil
}

// exporterNames returns the exporters the environment asks for, none when
// tracing is off.
func exporterNames() ([]string, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	v, set := os.LookupEnv("OTEL_TRACES_EXPORTER")
	v = strings.ToLower(strings.TrimSpace(v))
	if !set || v == "" {
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil // off by default
		}
		return []string{"otlp"}, nil
	}
	var names []string
	for _, n := range strings.Split(v, ",") {
		switch n = strings.TrimSpace(n); n {
		case "none":
			return nil, nil
		case "otlp", "console":
			names = append(names, n)
		default:
			return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: jobsd supports otlp, console and none", ErrConfig, n)
		}
	}
	return names, nil
}

func newExporter(ctx context.Context, name string, console io.Writer) (sdktrace.SpanExporter, error) {
	if name == "console" {
		return stdouttrace.New(stdouttrace.WithWriter(console))
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.TrimSpace(protocol) {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("%w: OTLP protocol %q: jobsd supports http/protobuf and grpc", ErrConfig, protocol)
}

// Propagator is the propagator jobsd reads and writes trace context with:
// W3C trace context (traceparent, tracestate) and W3C baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
