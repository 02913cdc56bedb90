package metrics

import (
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RiverEventKinds are the River events ObserveRiver needs; pass them to
// river.Client.Subscribe.
var RiverEventKinds = []river.EventKind{
	river.EventKindJobCompleted,
	river.EventKindJobFailed,
	river.EventKindJobCancelled,
}

// ObserveRiver records job durations, waits and outcomes from a River subscription
// until the channel is closed (River closes it when the client stops, after
// running jobs finished). Run it in its own goroutine.
func (m *Metrics) ObserveRiver(events <-chan *river.Event) {
	for ev := range events {
		m.observe(ev)
	}
}

func (m *Metrics) observe(ev *river.Event) {
	if ev == nil || ev.Job == nil {
		return
	}
	kind := ev.Job.Kind
	var outcome string
	switch ev.Kind {
	case river.EventKindJobCompleted:
		outcome = "completed"
		m.jobCompleted.WithLabelValues(kind).Inc()
	case river.EventKindJobFailed:
		outcome = "failed"
		m.jobFailed.WithLabelValues(kind).Inc()
		if ev.Job.State == rivertype.JobStateDiscarded {
			m.jobDiscarded.WithLabelValues(kind).Inc()
		}
	case river.EventKindJobCancelled:
		outcome = "cancelled"
		m.jobCancelled.WithLabelValues(kind).Inc()
	default:
		return
	}
	if ev.JobStats != nil {
		m.jobDuration.WithLabelValues(kind, outcome).Observe(ev.JobStats.RunDuration.Seconds())
		m.jobWait.WithLabelValues(kind, ev.Job.Queue).Observe(max(ev.JobStats.QueueWaitDuration.Seconds(), 0))
	}
}
