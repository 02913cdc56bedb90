package consumer

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts what a Consumer did with its deliveries since New. Every
// delivery ends in exactly one of them (or is redelivered after a crash or a
// lost connection, and counted when it is settled).
type Stats struct {
	Processed  uint64 // new message ids whose effect committed
	Duplicates uint64 // ids already in the inbox: acked without effect
	Rejected   uint64 // malformed or permanently failing: dead-lettered
	Requeued   uint64 // returned to the queue by a consumer stopped while it held them (database down, between handler tries)

	// Failed transactions retried in the process (not deliveries: a batch
	// held through an outage counts once per attempt).
	DatabaseRetries uint64 // database errors: the messages are held until the database is back
	HandlerRetries  uint64 // handler errors: at most MaxAttempts-1 per message, then dead-lettered
}

// Stats returns the counts so far. It is safe to call while Run runs.
func (c *Consumer) Stats() Stats {
	return Stats{
		Processed:  c.stats.processed.Load(),
		Duplicates: c.stats.duplicates.Load(),
		Rejected:   c.stats.rejected.Load(),
		Requeued:   c.stats.requeued.Load(),

		DatabaseRetries: c.stats.dbRetries.Load(),
		HandlerRetries:  c.stats.handlerRetries.Load(),
	}
}

type counters struct {
	processed, duplicates, rejected, requeued atomic.Uint64
	dbRetries, handlerRetries                 atomic.Uint64

	// Prometheus children; nil without a Registerer.
	mProcessed, mDuplicates, mRejected, mRequeued prometheus.Counter
	mDBRetries, mHandlerRetries                   prometheus.Counter
	mBatchDuration, mLag                          prometheus.Observer
}

// retried counts one failed transaction that is retried in the process.
func (s *counters) retried(database bool) {
	c, m := &s.handlerRetries, s.mHandlerRetries
	if database {
		c, m = &s.dbRetries, s.mDBRetries
	}
	c.Add(1)
	if m != nil {
		m.Inc()
	}
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

// batchDone records the duration of a committed batch transaction and the
// lag of its messages: now minus their AMQP timestamp (which has whole
// seconds; messages without one are not observed).
func (s *counters) batchDone(took time.Duration, msgs []Delivery) {
	if s.mBatchDuration == nil {
		return
	}
	s.mBatchDuration.Observe(took.Seconds())
	now := time.Now()
	for _, m := range msgs {
		if !m.Timestamp.IsZero() {
			s.mLag.Observe(max(now.Sub(m.Timestamp).Seconds(), 0))
		}
	}
}

// register registers (or reuses, when another Consumer did) the consumer's
// collectors and binds this consumer's queue label. Every labelled child
// exists from the start, at 0, so that rate() and increase() work before the
// first message of each kind.
func (s *counters) register(reg prometheus.Registerer, queue string) error {
	if reg == nil {
		return nil
	}
	vec, err := registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobsd_consumer_messages_total",
		Help: "Messages settled by jobsd consumers, by queue and result (processed, duplicate, rejected, requeued).",
	}, []string{"queue", "result"}))
	if err != nil {
		return err
	}
	retries, err := registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobsd_consumer_retries_total",
		Help: "Failed consumer transactions retried in the process, by queue and reason " +
			"(database: messages held while the database is unavailable; handler: handler errors).",
	}, []string{"queue", "reason"}))
	if err != nil {
		return err
	}
	batch, err := registerVec(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobsd_consumer_batch_duration_seconds",
		Help:    "Duration of the consumer's committed batch transactions (inbox insert, handler, commit), by queue.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"queue"}))
	if err != nil {
		return err
	}
	lag, err := registerVec(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "jobsd_consumer_lag_seconds",
		Help: "Time from a message's AMQP timestamp (the outbox event's creation, whole seconds) " +
			"to the commit of its effect, by queue.",
		Buckets: []float64{.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600},
	}, []string{"queue"}))
	if err != nil {
		return err
	}
	s.mBatchDuration = batch.WithLabelValues(queue)
	s.mLag = lag.WithLabelValues(queue)
	s.mDBRetries = retries.WithLabelValues(queue, "database")
	s.mHandlerRetries = retries.WithLabelValues(queue, "handler")
	s.mProcessed = vec.WithLabelValues(queue, "processed")
	s.mDuplicates = vec.WithLabelValues(queue, "duplicate")
	s.mRejected = vec.WithLabelValues(queue, "rejected")
	s.mRequeued = vec.WithLabelValues(queue, "requeued")
	return nil
}

// registerVec registers vec, or returns the identical collector another
// Consumer registered.
func registerVec[V prometheus.Collector](reg prometheus.Registerer, vec V) (V, error) {
	err := reg.Register(vec)
	if err == nil {
		return vec, nil
	}
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) {
		return vec, err
	}
	existing, ok := already.ExistingCollector.(V)
	if !ok {
		return vec, err
	}
	return existing, nil
}
