// Package logging builds jobsd's slog handlers, which hold every log line to
// the conventions of docs/operations.md ("Logs"):
//
//   - the error of a line is under KeyErr ("err"), never "error";
//   - every line has exactly one KeyComponent ("component": serve, relay,
//     consumer, river, metrics, http, ...): a package names its component
//     with logger.With(KeyComponent, name) when it is constructed, the
//     innermost With wins (a relay built on serve's logger logs
//     component=relay, once), and a line without one gets the handler's
//     default;
//   - durations are strings in time.Duration's format ("1.5s"), in JSON as in
//     text (slog's JSON handler would write nanoseconds);
//   - a line about one outbox message carries its id under KeyMessageID.
//
// River's logger (River) and River UI's (Library) also put those libraries'
// "error" attributes under "err", and River's periodic "Producer job counts"
// line goes to Debug.
//
// It imports only the standard library.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
)

// Keys every jobsd log line uses.
const (
	KeyComponent = "component"
	KeyErr       = "err"
	KeyMessageID = "message_id"
)

// New returns a handler writing format ("text" or "json") at level to w,
// with durations as strings and defaultComponent as the component of lines
// that name none.
func New(format string, level slog.Leveler, w io.Writer, defaultComponent string) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationString}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("unknown log format %q (use text or json)", format)
	}
	return &componentHandler{inner: h, component: defaultComponent}, nil
}

// durationString writes a time.Duration as its String ("250ms").
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// componentHandler keeps the component out of the attributes it passes to
// inner until a line is written, so that a line has exactly one: the one of
// the innermost With, else the default.
type componentHandler struct {
	inner     slog.Handler
	component string
}

func (h *componentHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	component := h.component
	attrs := make([]slog.Attr, 0, r.NumAttrs()+1)
	attrs = append(attrs, slog.Attr{}) // the component's place
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == KeyComponent { // the line names its component itself: the last one wins
			component = a.Value.String()
		} else {
			attrs = append(attrs, a)
		}
		return true
	})
	attrs[0] = slog.String(KeyComponent, component)
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(attrs...)
	return h.inner.Handle(ctx, out)
}

func (h *componentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	i := slices.IndexFunc(attrs, func(a slog.Attr) bool { return a.Key == KeyComponent })
	if i < 0 {
		c.inner = h.inner.WithAttrs(attrs)
		return &c
	}
	var rest []slog.Attr
	for _, a := range attrs {
		if a.Key == KeyComponent {
			c.component = a.Value.String()
		} else {
			rest = append(rest, a)
		}
	}
	c.inner = h.inner.WithAttrs(rest)
	return &c
}

// WithGroup fixes the component before the group opens: it stays at the top
// level, and later attributes go into the group.
func (h *componentHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.inner.WithAttrs([]slog.Attr{slog.String(KeyComponent, h.component)}).WithGroup(name)
}
