package consumer

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts what a Consumer did with its deliveries since New. Every
// delivery ends in exactly one of them (or is redelivered after a crash or a
// lost connection, and counted when it is settled).
type Stats struct {
	Processed  uint64 // new message ids whose effect committed
	Duplicates uint64 // ids already in the inbox: acked without effect
	Rejected   uint64 // malformed or permanently failing: dead-lettered
	Requeued   uint64 // nacked with requeue after a failure (database down, ...)
}

// Stats returns the counts so far. It is safe to call while Run runs.
func (c *Consumer) Stats() Stats {
	return Stats{
		Processed:  c.stats.processed.Load(),
		Duplicates: c.stats.duplicates.Load(),
		Rejected:   c.stats.rejected.Load(),
		Requeued:   c.stats.requeued.Load(),
	}
}

type counters struct {
	processed, duplicates, rejected, requeued atomic.Uint64

	// Prometheus children; nil without a Registerer.
	mProcessed, mDuplicates, mRejected, mRequeued prometheus.Counter
}

func (s *counters) add(processed, duplicates, rejected, requeued int) {
	inc := func(n int, c *atomic.Uint64, m prometheus.Counter) {
		if n == 0 {
			return
		}
		c.Add(uint64(n))
		if m != nil {
			m.Add(float64(n))
		}
	}
	inc(processed, &s.processed, s.mProcessed)
	inc(duplicates, &s.duplicates, s.mDuplicates)
	inc(rejected, &s.rejected, s.mRejected)
	inc(requeued, &s.requeued, s.mRequeued)
}

// register registers (or reuses, when another Consumer did) the messages
// counter and binds this consumer's queue label.
func (s *counters) register(reg prometheus.Registerer, queue string) error {
	if reg == nil {
		return nil
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobsd_consumer_messages_total",
		Help: "Messages settled by jobsd consumers, by queue and result (processed, duplicate, rejected, requeued).",
	}, []string{"queue", "result"})
	if err := reg.Register(vec); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return err
		}
		existing, ok := already.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return err
		}
		vec = existing
	}
	s.mProcessed = vec.WithLabelValues(queue, "processed")
	s.mDuplicates = vec.WithLabelValues(queue, "duplicate")
	s.mRejected = vec.WithLabelValues(queue, "rejected")
	s.mRequeued = vec.WithLabelValues(queue, "requeued")
	return nil
}
