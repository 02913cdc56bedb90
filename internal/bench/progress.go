package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

type progressKey struct{}

// WithProgress returns a context whose measurements report what they are
// doing (phase, counts) to f, about once a second while they wait.
func WithProgress(ctx context.Context, f func(msg string)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

func progressf(ctx context.Context, format string, args ...any) {
	if f, ok := ctx.Value(progressKey{}).(func(string)); ok {
		f(fmt.Sprintf(format, args...))
	}
}

type loggerKey struct{}

// WithLogger returns a context whose measurements give log to the relays,
// consumers and River clients they run. Default: no logs.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
