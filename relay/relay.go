package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
)

// finalFlushTimeout bounds the database writes a stopping relay still makes
// (marking confirmed rows, releasing the others).
const finalFlushTimeout = 10 * time.Second

// Relay forwards outbox rows to RabbitMQ. Create it with New and run it with
// Run; several relays (in one process or many) may run on one database.
type Relay struct {
	cfg     Config
	pool    *pgxpool.Pool
	amqpURL string   // as given, for logs (redacted)
	urls    []string // the brokers, tried in order
	log     *slog.Logger
	metrics *metrics
	trace   tracing // off: no tracer

	exchange exchange // the type the exchange turned out to have

	running   atomic.Bool
	connected atomic.Bool
	blocked   atomic.Bool // the broker sent connection.blocked (resource alarm)
	// keyPeak is the most messages of one key seen in flight at once with
	// StrictOrder (1 when it holds); for tests.
	keyPeak   atomic.Int64
	published atomic.Int64 // rows marked published (or deleted) by this relay
}

// New checks cfg and returns a relay that publishes the pending rows of pool's
// outbox_event table to the broker at amqpURL. amqpURL may list several
// brokers separated by commas (a RabbitMQ cluster's nodes): every connection
// tries them in order, starting with the one that worked last. It connects
// to nothing; Run does.
func New(pool *pgxpool.Pool, amqpURL string, cfg Config) (*Relay, error) {
	if pool == nil {
		return nil, errors.New("relay: pool is nil (open one with database.Open)")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urls := SplitURLs(amqpURL)
	if len(urls) == 0 {
		return nil, errors.New("relay: no AMQP URL (expected amqp://user:password@host:port/vhost, or several separated by commas)")
	}
	for _, u := range urls {
		if _, err := amqp.ParseURI(u); err != nil {
			return nil, fmt.Errorf("relay: invalid AMQP URL %s (expected amqp://user:password@host:port/vhost)", RedactURL(u))
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Relay{
		cfg:     cfg,
		pool:    pool,
		amqpURL: amqpURL,
		urls:    urls,
		log:     cfg.Logger.With("component", "relay", "relay_id", cfg.ID),
		metrics: m,
		trace:   newTracing(cfg.TracerProvider),
	}, nil
}

// ID returns the relay's identity, as written to outbox_event.claimed_by.
func (r *Relay) ID() string { return r.cfg.ID }

// BrokerConnected reports whether the relay currently has a working channel
// to the broker. Use it for readiness checks.
func (r *Relay) BrokerConnected() bool { return r.connected.Load() }

// BrokerBlocked reports whether the broker currently blocks this relay's
// publishing (connection.blocked: a memory or disk alarm). Claims pause
// meanwhile; rows stay pending.
func (r *Relay) BrokerBlocked() bool { return r.blocked.Load() }

// Run relays until ctx is done and returns nil after a clean stop. Broker and
// database failures do not end it: it reconnects with backoff and rows stay
// pending meanwhile. On stop it waits a moment for outstanding confirms, marks
// what the broker confirmed and releases the rest of its leased rows, so that
// another relay can take them at once. Run may not be called twice at a time.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run is already running")
	}
	defer r.running.Store(false)

	u := newRun(ctx, r)
	defer u.close()
	var wg sync.WaitGroup
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if !r.cfg.PollOnly {
		start(u.listenLoop)
	}
	if !r.cfg.keepsPublished() && !r.cfg.deletesAtOnce() {
		start(u.retentionLoop)
	}
	alive := u.startLiveness() // before the first claim: its leases are given back if it dies
	var dbWG sync.WaitGroup
	dbWG.Add(2)
	go func() { defer dbWG.Done(); u.claimLoop() }()
	go func() { defer dbWG.Done(); u.markLoop() }()

	r.log.Info("relay started", "broker", RedactURL(r.amqpURL), "exchange", r.cfg.Exchange, "exchange_type", r.cfg.ExchangeType,
		"batch", r.cfg.BatchSize, "window", r.cfg.Window, "lease", r.cfg.Lease, "poll_only", r.cfg.PollOnly)
	u.brokerLoop()

	// The broker side is gone: no more confirms or releases can come. Let the
	// claimer and the marker write what is left, then stop.
	close(u.stop)
	dbWG.Wait()
	wg.Wait()
	if alive != nil {
		alive.Stop(context.Background()) // after the final release: nothing left to give back
	}
	r.log.Info("relay stopped")
	return nil
}
