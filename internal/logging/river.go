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

// River returns the logger to give River (river.Config.Logger): Library(l,
// "river").
func River(l *slog.Logger) *slog.Logger { return Library(l, "river") }

// Library returns the logger to give a library that logs with slog (River,
// River UI): l's lines with component, the library's "error" attributes
// under KeyErr, and River's periodic job-count lines at Debug.
func Library(l *slog.Logger, component string) *slog.Logger {
	return slog.New(&libraryHandler{l.With(KeyComponent, component).Handler()})
}

type libraryHandler struct{ inner slog.Handler }

func (h *libraryHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *libraryHandler) Handle(ctx context.Context, r slog.Record) error {
	level := r.Level
	if level == slog.LevelInfo && isRiverPeriodic(r.Message) {
		level = slog.LevelDebug
		if !h.inner.Enabled(ctx, level) {
			return nil
		}
	}
	out := slog.NewRecord(r.Time, level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(errKey(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *libraryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	renamed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		renamed[i] = errKey(a)
	}
	return &libraryHandler{h.inner.WithAttrs(renamed)}
}

func (h *libraryHandler) WithGroup(name string) slog.Handler {
	return &libraryHandler{h.inner.WithGroup(name)}
}

// errKey puts an "error" attribute under KeyErr.
func errKey(a slog.Attr) slog.Attr {
	if a.Key == "error" {
		a.Key = KeyErr
	}
	return a
}

func isRiverPeriodic(msg string) bool {
	for _, suffix := range riverPeriodic {
		if strings.HasSuffix(msg, suffix) {
			return true
		}
	}
	return false
}
