package main

import (
	"errors"
	"log/slog"

	"github.com/urfave/cli/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/telemetry"
)

// setupTracing turns OpenTelemetry tracing on when the OTEL_* variables ask
// for it (see telemetry.Setup), naming the service service unless
// OTEL_SERVICE_NAME does. It returns the provider (nil when tracing is off)
// and a function that flushes the last spans, to defer. An unsupported value
// is a usage error.
func setupTracing(c *cli.Context, service string) (trace.TracerProvider, func(), error) {
	tp, shutdown, err := telemetry.Setup(c.Context, telemetry.Config{
		ServiceName: service,
		Console:     c.App.ErrWriter,
		Logger:      slog.Default(),
	})
	if errors.Is(err, telemetry.ErrConfig) {
		return nil, shutdown, usagef("%v", err)
	}
	if err != nil {
		return nil, shutdown, err
	}
	if tp != nil {
		slog.Info("tracing on (OpenTelemetry)", "service", service)
	}
	return tp, shutdown, nil
}
