package outbox_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testSpanID  = "00f067aa0ba902b7"
	testParent  = "00-" + testTraceID + "-" + testSpanID + "-01"
)

// inSpan returns a context holding a (sampled) span context, as a caller's
// span would; state is its tracestate ("" for none).
func inSpan(t *testing.T, state string) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(testTraceID)
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(testSpanID)
	require.NoError(t, err)
	ts, err := trace.ParseTraceState(state)
	require.NoError(t, err)
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts,
	}))
}

func writeOne(t *testing.T, db *testdb.DB, ctx context.Context, e outbox.Event) map[string]string {
	t.Helper()
	tx, err := db.Pool.Begin(context.Background())
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck
	ids, err := outbox.WriteReturningIDs(ctx, tx, e)
	require.NoError(t, err)
	var headers string
	require.NoError(t, tx.QueryRow(context.Background(), "SELECT headers::text FROM outbox_event WHERE id = $1", ids[0]).Scan(&headers))
	var m map[string]string
	require.NoError(t, json.Unmarshal([]byte(headers), &m))
	return m
}

func TestWriteStoresTraceContext(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)

	t.Run("no span, no trace headers", func(t *testing.T) {
		require.Empty(t, writeOne(t, db, context.Background(), outbox.Event{Topic: "t", Payload: 1}))
	})
	t.Run("the caller's span", func(t *testing.T) {
		given := map[string]string{"a": "b"}
		got := writeOne(t, db, inSpan(t, "vendor=x,other=y"), outbox.Event{Topic: "t", Payload: 1, Headers: given})
		require.Equal(t, map[string]string{"a": "b", "traceparent": testParent, "tracestate": "vendor=x,other=y"}, got)
		require.Equal(t, map[string]string{"a": "b"}, given, "the caller's map is not modified")
	})
	t.Run("a producer's own traceparent wins", func(t *testing.T) {
		own := "00-11111111111111111111111111111111-2222222222222222-00"
		got := writeOne(t, db, inSpan(t, "vendor=x"), outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"traceparent": own}})
		require.Equal(t, map[string]string{"traceparent": own}, got)
	})
	// {"h": "v..."} is len(v)+9 bytes; the trace context adds
	// `, "traceparent": "<55 bytes>"`, 74 bytes.
	t.Run("trace context that just fits", func(t *testing.T) {
		v := strings.Repeat("v", outbox.MaxHeadersBytes-9-74)
		got := writeOne(t, db, inSpan(t, ""), outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h": v}})
		require.Equal(t, testParent, got["traceparent"])
	})
	t.Run("trace context that does not fit is left out", func(t *testing.T) {
		v := strings.Repeat("v", outbox.MaxHeadersBytes-9-73)
		got := writeOne(t, db, inSpan(t, ""), outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h": v}})
		require.Equal(t, map[string]string{"h": v}, got)
	})
}

func TestWriteSQLStoresTraceContext(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	sqlDB := openSQL(t, "pgx", db)
	ctx := inSpan(t, "")
	tx, err := sqlDB.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck
	ids, err := outbox.WriteSQLReturningIDs(ctx, tx, outbox.Event{Topic: "t", Payload: 1})
	require.NoError(t, err)
	var headers string
	require.NoError(t, tx.QueryRowContext(ctx, "SELECT headers::text FROM outbox_event WHERE id = $1", ids[0]).Scan(&headers))
	require.JSONEq(t, `{"traceparent": "`+testParent+`"}`, headers)
}
