package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jobsd/jobsd/signup"
)

// publish signs up one user every rate until ctx is done, like the publisher
// of the job-queue article this project grew from. A failed signup is logged
// and the stream goes on.
func publish(ctx context.Context, svc *signup.Service, rate time.Duration, start time.Time, log *slog.Logger) error {
	tick := time.NewTicker(rate)
	defer tick.Stop()
	run := start.UnixMilli()
	for n := 1; ; n++ {
		email := fmt.Sprintf("demo-%d-%d@example.com", run, n)
		if _, err := svc.Signup(ctx, email, fmt.Sprintf("Demo User %d", n)); err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			log.Warn("signup failed", "email", email, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
