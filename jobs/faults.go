package jobs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Faults injects failures and latency into downstream calls, so that retries,
// discards and rescues can be seen in demos and exercised in tests.
type Faults struct {
	// FailRate is the probability (0 to 1) that a call fails. Zero: never.
	FailRate float64
	// FailService names a service whose calls always fail. Empty: none.
	FailService string
	// FailAttempts makes the first FailAttempts attempts of every job fail, so
	// that each job is retried deterministically (FailAttempts 1: every job
	// fails once, then succeeds if nothing else fails it). Zero: none.
	FailAttempts int
	// Delay is how long each call takes before it succeeds or fails. Zero: no delay.
	Delay time.Duration
}

// Validate reports a fault configuration that makes no sense.
func (f Faults) Validate() error {
	if f.FailRate < 0 || f.FailRate > 1 {
		return fmt.Errorf("fail rate %v is not between 0 and 1", f.FailRate)
	}
	if f.FailAttempts < 0 {
		return fmt.Errorf("fail attempts %d is negative", f.FailAttempts)
	}
	if f.Delay < 0 {
		return fmt.Errorf("work delay %v is negative", f.Delay)
	}
	return nil
}

// InjectedError is returned by a call that failed on purpose.
type InjectedError struct{ Service string }

func (e *InjectedError) Error() string {
	return fmt.Sprintf("injected fault: service %s unavailable", e.Service)
}

// inject runs before the downstream call of attempt (1 for the first) of a
// job for service.
func (f Faults) inject(ctx context.Context, service string, attempt int) error {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if service == f.FailService || attempt <= f.FailAttempts || (f.FailRate > 0 && rand.Float64() < f.FailRate) {
		return &InjectedError{Service: service}
	}
	return nil
}
