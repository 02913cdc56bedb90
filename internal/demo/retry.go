package demo

import (
	"time"

	"github.com/riverqueue/river/rivertype"
)

// fastRetry retries after 1s, 2s, 4s, then every 5s: River's default backoff
// (attempt^4 seconds: 1s, 16s, 81s, ...) is right for production, but would
// leave a short demo's third attempts hours away.
type fastRetry struct{}

// NextRetry implements river.ClientRetryPolicy.
func (fastRetry) NextRetry(job *rivertype.JobRow) time.Time {
	wait := 5 * time.Second
	// River calls this before recording the failure that just happened.
	if failures := len(job.Errors) + 1; failures <= 3 {
		wait = time.Second << (failures - 1)
	}
	return time.Now().Add(wait)
}
