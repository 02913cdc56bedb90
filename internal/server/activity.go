package server

import (
	"time"

	"github.com/riverqueue/river"
)

// activityEvery is how often a process logs the jobs it worked.
const activityEvery = 10 * time.Second

// logActivity logs, every activityEvery when something changed, how many jobs
// this process completed and failed: with several `jobsd serve` processes the
// lines show how they share the work. It returns when River closes the
// subscription (the client stopped).
func (s *Server) logActivity(events <-chan *river.Event) {
	tick := time.NewTicker(activityEvery)
	defer tick.Stop()
	var completed, failed, loggedCompleted, loggedFailed int
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind == river.EventKindJobCompleted {
				completed++
			} else {
				failed++
			}
		case <-tick.C:
			if completed == loggedCompleted && failed == loggedFailed {
				continue
			}
			s.log.Info("jobs worked by this process",
				"completed", completed, "failed", failed,
				"completed_last_10s", completed-loggedCompleted, "failed_last_10s", failed-loggedFailed)
			loggedCompleted, loggedFailed = completed, failed
		}
	}
}

// startActivityLog subscribes to job outcomes; call it before River starts.
func (s *Server) startActivityLog() {
	events, _ := s.river.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	go s.logActivity(events)
}
