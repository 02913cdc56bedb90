package relay

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus collectors; all methods are no-ops when
// Config.Registerer is nil.
type metrics struct {
	publishedTotal prometheus.Counter
	failuresTotal  *prometheus.CounterVec
	duration       prometheus.Histogram
	connected      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		publishedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobsd_outbox_published_total",
			Help: "Outbox events the broker confirmed and the relay marked published.",
		}),
		failuresTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobsd_relay_publish_failures_total",
			Help: "Publishes the broker refused (nack, return, channel error), by what became of the row: retry or dead.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jobsd_relay_publish_duration_seconds",
			Help:    "Time from the claim of an outbox row to the broker's confirm of its message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobsd_relay_broker_connected",
			Help: "1 while the relay has a working channel to the broker, else 0.",
		}),
	}
	var err error
	m.publishedTotal = register(reg, m.publishedTotal, &err)
	m.failuresTotal = register(reg, m.failuresTotal, &err)
	m.duration = register(reg, m.duration, &err)
	m.connected = register(reg, m.connected, &err)
	for _, result := range []string{"retry", "dead"} {
		m.failuresTotal.WithLabelValues(result) // at 0 from the start, for rate()
	}
	return m, err
}

// register registers c, or returns the collector already registered under
// its name (several relays in one process share them).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}

func (m *metrics) published(n int64) {
	if m != nil && n > 0 {
		m.publishedTotal.Add(float64(n))
	}
}

func (m *metrics) failure(state string) {
	if m == nil {
		return
	}
	result := "retry"
	if state == "dead" {
		result = "dead"
	}
	m.failuresTotal.WithLabelValues(result).Inc()
}

func (m *metrics) observeConfirm(d time.Duration) {
	if m != nil {
		m.duration.Observe(d.Seconds())
	}
}

func (m *metrics) setConnected(on bool) {
	if m == nil {
		return
	}
	if on {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}
