package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lines decodes the JSON lines of buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

func newJSON(t *testing.T, level slog.Level) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	h, err := New("json", level, &buf, "serve")
	require.NoError(t, err)
	return slog.New(h), &buf
}

func TestComponentExactlyOnce(t *testing.T) {
	t.Parallel()
	log, buf := newJSON(t, slog.LevelInfo)
	log.Info("default")
	relay := log.With("component", "relay", "relay_id", "r1")
	relay.Info("own")
	relay.With("component", "inner").Info("innermost wins")
	relay.Info("the line's own wins", "component", "line")
	relay.WithGroup("g").Info("grouped", "k", 1)

	got := lines(t, buf)
	require.Len(t, got, 5)
	for i, want := range []string{"serve", "relay", "inner", "line", "relay"} {
		require.Equal(t, want, got[i]["component"], got[i]["msg"])
	}
	require.Equal(t, "r1", got[1]["relay_id"])
	require.Equal(t, map[string]any{"k": 1.0}, got[4]["g"])
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		require.Equal(t, 1, strings.Count(line, `"component"`), line)
	}
}

func TestDurationsAreStrings(t *testing.T) {
	t.Parallel()
	log, buf := newJSON(t, slog.LevelInfo)
	log.Info("took", "took", 1500*time.Millisecond, slog.Group("g", "timeout", 30*time.Second), "err", errors.New("boom"))
	got := lines(t, buf)[0]
	require.Equal(t, "1.5s", got["took"])
	require.Equal(t, map[string]any{"timeout": "30s"}, got["g"])
	require.Equal(t, "boom", got["err"])

	var text bytes.Buffer
	h, err := New("text", slog.LevelInfo, &text, "consumer")
	require.NoError(t, err)
	slog.New(h).Info("took", "took", 250*time.Millisecond)
	require.Contains(t, text.String(), "component=consumer took=250ms")
}

func TestUnknownFormat(t *testing.T) {
	t.Parallel()
	_, err := New("xml", slog.LevelInfo, &bytes.Buffer{}, "serve")
	require.ErrorContains(t, err, `unknown log format "xml"`)
}

// TestRiver: River's lines get component=river and their error under err,
// and its periodic job counts are Debug lines, shown only at --log-level
// debug.
func TestRiver(t *testing.T) {
	t.Parallel()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		log, buf := newJSON(t, level)
		river := River(log)
		require.True(t, river.Enabled(context.Background(), slog.LevelInfo))
		river.Info("producer: Producer job counts", "num_completed_jobs", 3, "queue", "default")
		river.Info("producer: Job errored; retrying", "error", "boom")
		got := lines(t, buf)
		if level == slog.LevelInfo {
			require.Len(t, got, 1)
			require.Equal(t, "producer: Job errored; retrying", got[0]["msg"])
			require.Equal(t, "river", got[0]["component"])
			require.Equal(t, "boom", got[0]["err"], "River's error attribute under err")
			require.NotContains(t, got[0], "error")
			continue
		}
		require.Len(t, got, 2)
		require.Equal(t, "DEBUG", got[0]["level"])
		require.Equal(t, "river", got[0]["component"])
		require.Equal(t, "INFO", got[1]["level"])
	}
}
