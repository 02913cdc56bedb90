package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobsd/jobsd/internal/telemetry"
)

// The tests of this package set environment variables and OpenTelemetry's
// globals: none of them runs in parallel, and they run in file order.

// otelVars are every variable Setup reads; each test starts with all unset.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
}

func clearEnv(t *testing.T) {
	for _, v := range otelVars {
		t.Setenv(v, "")
	}
}

func TestProviderBeforeSetup(t *testing.T) {
	_, on := telemetry.Provider(nil)
	require.False(t, on, "the global provider before anything installed one is off")
	_, on = telemetry.Provider(otel.GetTracerProvider())
	require.False(t, on)
	_, on = telemetry.Provider(noop.NewTracerProvider())
	require.False(t, on)
	tp := sdktrace.NewTracerProvider()
	got, on := telemetry.Provider(tp)
	require.True(t, on)
	require.Same(t, tp, got)
}

func TestSetupOffByDefault(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"nothing set":   {},
		"exporter none": {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		"sdk disabled":  {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
		"only a name":   {"OTEL_SERVICE_NAME": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range env {
				t.Setenv(k, v)
			}
			tp, shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{})
			require.NoError(t, err)
			require.Nil(t, tp)
			shutdown()
			_, on := telemetry.Provider(nil)
			require.False(t, on, "Setup installed nothing")
		})
	}
}

func TestSetupRefusesUnsupportedValues(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"exporter":       {"OTEL_TRACES_EXPORTER": "zipkin"},
		"protocol":       {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		"trace protocol": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
	} {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range env {
				t.Setenv(k, v)
			}
			tp, shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{})
			require.ErrorIs(t, err, telemetry.ErrConfig)
			require.Nil(t, tp)
			shutdown()
		})
	}
}

// TestSetupConsole: OTEL_TRACES_EXPORTER=console writes the spans to the
// Console writer on shutdown, with the service name of the environment, and
// installs the provider and the W3C propagator as globals.
func TestSetupConsole(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	var out bytes.Buffer
	tp, shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "jobsd", Console: &out})
	require.NoError(t, err)
	require.NotNil(t, tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	got, on := telemetry.Provider(nil)
	require.True(t, on)
	require.Same(t, tp, got)
	require.ElementsMatch(t, []string{"traceparent", "tracestate", "baggage"}, otel.GetTextMapPropagator().Fields())

	_, span := tp.Tracer("test").Start(context.Background(), "console-span")
	span.End()
	shutdown()
	var doc struct {
		Name     string
		Resource []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	require.NoError(t, json.NewDecoder(&out).Decode(&doc), out.String())
	require.Equal(t, "console-span", doc.Name)
	var service any
	for _, kv := range doc.Resource {
		if kv.Key == "service.name" {
			service = kv.Value.Value
		}
	}
	require.Equal(t, "from-env", service)
}

// TestSetupOTLP: an OTLP endpoint alone turns tracing on (HTTP by default,
// gRPC by protocol). Nothing is exported: no span is started.
func TestSetupOTLP(t *testing.T) {
	for _, protocol := range []string{"", "http/protobuf", "grpc"} {
		t.Run("protocol "+protocol, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			tp, shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{})
			require.NoError(t, err)
			require.NotNil(t, tp)
			shutdown()
			otel.SetTracerProvider(noop.NewTracerProvider())
		})
	}
}

func TestLogHandler(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&out, nil))).With("component", "c")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "s")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")
	log.WithGroup("g").InfoContext(ctx, "grouped")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3)
	var inside, outside map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &inside))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &outside))
	sc := trace.SpanContextFromContext(ctx)
	require.Equal(t, sc.TraceID().String(), inside["trace_id"])
	require.Equal(t, sc.SpanID().String(), inside["span_id"])
	require.Equal(t, "c", inside["component"])
	require.NotContains(t, outside, "trace_id")
	require.NotContains(t, outside, "span_id")
	require.Contains(t, lines[2], sc.TraceID().String())
}
