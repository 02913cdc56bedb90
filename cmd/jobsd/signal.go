package main

import (
	"context"
	"log/slog"
	"os/signal"
	"syscall"
)

// stopContext is done at the first SIGINT or SIGTERM. It then restores the
// default handling of both, as signal.NotifyContext's documentation
// recommends, so that a second one ends the process at once instead of being
// swallowed by a stop that takes long.
func stopContext(parent context.Context, log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		if parent.Err() == nil && context.Cause(ctx) != context.Canceled {
			log.Info("stopping; press Ctrl-C again to exit at once", "cause", context.Cause(ctx).Error())
		}
	}()
	return ctx, stop
}
