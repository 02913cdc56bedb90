package logging

import (
	"context"
	"log/slog"
	"strings"
)

// riverPeriodic are the suffixes of the messages River logs at Info every
// few seconds while jobs run ("producer: Producer job counts", every 5s per
// queue whose counts changed): operational noise that River passes as Info.
var riverPeriodic = []string{": Producer job counts"}

// River returns the logger to give River (river.Config.Logger): l's lines
// with component=river, River's periodic job-count lines at Debug.
func River(l *slog.Logger) *slog.Logger {
	return slog.New(&riverHandler{l.With(KeyComponent, "river").Handler()})
}

type riverHandler struct{ inner slog.Handler }

func (h *riverHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *riverHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && isRiverPeriodic(r.Message) {
		if !h.inner.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r = r.Clone()
		r.Level = slog.LevelDebug
	}
	return h.inner.Handle(ctx, r)
}

func (h *riverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &riverHandler{h.inner.WithAttrs(attrs)}
}

func (h *riverHandler) WithGroup(name string) slog.Handler {
	return &riverHandler{h.inner.WithGroup(name)}
}

func isRiverPeriodic(msg string) bool {
	for _, suffix := range riverPeriodic {
		if strings.HasSuffix(msg, suffix) {
			return true
		}
	}
	return false
}
