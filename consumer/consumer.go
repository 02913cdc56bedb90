package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/internal/database"
	jsql "github.com/jobsd/jobsd/sql"
)

// Consumer consumes one queue and applies its messages' effects exactly once.
// Build it with New, run it with Run.
type Consumer struct {
	cfg     Config
	pool    *pgxpool.Pool
	amqpURL string   // as given, for logs (redacted)
	urls    []string // the brokers, tried in order
	// broker is the index in urls of the broker connected last.
	broker atomic.Int64
	log    *slog.Logger
	stats  counters
	// instance names this consumer in the broker's connection and consumer
	// tags: host, pid and a sequence number.
	instance string
	running  atomic.Bool
	ready    chan struct{}
	readyOne sync.Once
	// limitWarning logs once that the queue lacks x-delivery-limit.
	limitWarning sync.Once
	// connected is true while a session consumes (see Health).
	connected atomic.Bool
	// databaseFailing is true when the last batch transaction failed with a
	// database error (see Health).
	databaseFailing atomic.Bool
	// exchangeWarning logs once that the exchange is not of the configured
	// type, or that it ignores the binding keys.
	exchangeWarning sync.Once
	// foundKind is the exchange's type when it turned out to differ from
	// the configured one: later connections declare it as it is.
	foundKind atomic.Value
	// trace is off (no tracer) unless Config.TracerProvider records.
	trace tracing
}

// New checks cfg and returns a Consumer on pool and the broker at amqpURL.
// amqpURL may list several brokers separated by commas (a RabbitMQ cluster's
// nodes): every connection tries them in order, starting with the one that
// worked last. It connects to nothing; Run does.
func New(pool *pgxpool.Pool, amqpURL string, cfg Config) (*Consumer, error) {
	if pool == nil {
		return nil, errors.New("consumer: nil pool (pass the pgxpool.Pool of the database that holds consumer_inbox)")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urls := splitURLs(amqpURL)
	if len(urls) == 0 {
		return nil, errors.New("consumer: no AMQP URL (expected amqp://user:password@host:port/vhost, or several separated by commas)")
	}
	for _, u := range urls {
		if _, err := amqp.ParseURI(u); err != nil {
			return nil, fmt.Errorf("consumer: invalid AMQP URL %s (expected amqp://user:password@host:port/vhost)", database.Redact(u))
		}
	}
	c := &Consumer{
		cfg:     cfg,
		pool:    pool,
		amqpURL: amqpURL,
		urls:    urls,
		log:     cfg.Logger.With("component", "consumer", "queue", cfg.Queue),
		ready:   make(chan struct{}),
		trace:   newTracing(cfg.TracerProvider),
	}
	host, _ := os.Hostname()
	c.instance = fmt.Sprintf("%s:%d:%d", host, os.Getpid(), instanceSeq.Add(1))
	if err := c.stats.register(cfg.Registerer, cfg.Queue); err != nil {
		return nil, fmt.Errorf("consumer: register metrics: %w", err)
	}
	return c, nil
}

var instanceSeq atomic.Uint64

// Ready is closed once Run has declared the topology and its AMQP consumers
// are registered: from then on, published messages reach the queue and are
// consumed. It never closes if Run fails before that.
func (c *Consumer) Ready() <-chan struct{} { return c.ready }

var checkSchemaSQL = jsql.Statement("consumer_check_schema")

// Run checks the database schema, connects to the broker, declares the
// topology and consumes until ctx is done. Then it cancels its AMQP
// consumers, finishes the deliveries it already received (their transactions
// are not cancelled, see Config.TxTimeout), closes the connection and returns
// nil.
//
// Run fails fast, with an error, when the database or the broker is
// unreachable at start or the topology conflicts with what exists. Once
// consuming, it survives: a lost broker connection is redialled with capped
// exponential backoff (the broker redelivers what was not acked, the inbox
// makes that harmless), and while the database is unavailable each worker
// holds its batch unacked and retries it (see Config.DeliveryLimit). Beside
// the workers, a goroutine prunes the queue's consumer_inbox rows older than
// InboxRetention. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	if err := c.checkSchema(ctx); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	c.log.Info("consumer started", "broker", redactURLs(c.amqpURL), "exchange", c.cfg.Exchange, "exchange_type", c.cfg.ExchangeType, "binding_keys", c.cfg.BindingKeys,
		"prefetch", c.cfg.Prefetch, "batch_size", c.cfg.BatchSize, "concurrency", c.cfg.Concurrency,
		"max_attempts", c.cfg.MaxAttempts, "delivery_limit", c.cfg.DeliveryLimit, "inbox_retention", c.cfg.InboxRetention)
	if c.cfg.InboxRetention > 0 {
		pruneCtx, stopPruning := context.WithCancel(ctx)
		pruned := make(chan struct{})
		go func() {
			defer close(pruned)
			c.pruneLoop(pruneCtx)
		}()
		defer func() { stopPruning(); <-pruned }()
	}
	for {
		err := c.session(ctx, conn)
		_ = conn.Close()
		if ctx.Err() != nil {
			c.log.Info("consumer stopped", "processed", c.stats.processed.Load())
			return nil
		}
		c.log.Warn("lost the broker, reconnecting", "err", err)
		if conn, err = c.reconnect(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.log.Info("reconnected to the broker")
	}
}

func (c *Consumer) checkSchema(ctx context.Context) error {
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.pool.Exec(checkCtx, checkSchemaSQL)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return errors.New("consumer: tables consumer_inbox/analytics_counts are missing (run `jobsd migrate`)")
	case err != nil:
		return fmt.Errorf("consumer: database: %w", err)
	}
	return nil
}

// connect dials the first broker that answers (each once, from the one that
// worked last) and declares the topology.
func (c *Consumer) connect() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("jobsd consume " + c.cfg.Queue + " " + c.instance)
	var conn *amqp.Connection
	var errs []error
	for i := range c.urls {
		at := (int(c.broker.Load()) + i) % len(c.urls)
		dialed, err := amqp.DialConfig(c.urls[at], amqp.Config{
			Heartbeat:  10 * time.Second,
			Dial:       amqp.DefaultDial(10 * time.Second),
			Properties: props,
		})
		if err == nil {
			conn = dialed
			c.broker.Store(int64(at))
			break
		}
		errs = append(errs, err)
	}
	if conn == nil {
		err := errs[0]
		if len(errs) > 1 {
			err = errors.Join(errs...)
		}
		return nil, fmt.Errorf("consumer: cannot reach RabbitMQ at %s: %v (is it running? check --amqp-url / AMQP_URL)",
			redactURLs(c.amqpURL), err)
	}
	if err := c.declare(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return conn, nil
}

// splitURLs splits a comma-separated AMQP URL list (as relay.SplitURLs,
// which this package may not import).
func splitURLs(list string) []string {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// redactURLs redacts every password of an AMQP URL list.
func redactURLs(list string) string {
	urls := splitURLs(list)
	for i, u := range urls {
		urls[i] = database.Redact(u)
	}
	return strings.Join(urls, ",")
}

// reconnect dials until it succeeds, ctx is done or the topology conflicts.
func (c *Consumer) reconnect(ctx context.Context) (*amqp.Connection, error) {
	for attempt := 0; ; attempt++ {
		if !sleep(ctx, c.backoff(attempt)) {
			return nil, ctx.Err()
		}
		conn, err := c.connect()
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, errTopology) {
			return nil, err
		}
		c.log.Warn("broker still unreachable", "attempt", attempt+1, "err", err)
	}
}

// session consumes on conn until ctx is done (it then drains and returns nil)
// or the connection or one of its consumers is lost (it returns why).
func (c *Consumer) session(ctx context.Context, conn *amqp.Connection) error {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	// The workers' context ends after their AMQP consumers were cancelled
	// on a stop (or when the session is lost), not with ctx: a worker that
	// returns held messages to the queue must not get them back.
	sessCtx, cancelSess := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSess()
	// lost is closed when the connection or a consumer is lost: the workers
	// then drop what they hold instead of handling it, because they could not
	// ack it and the broker redelivers it anyway.
	lost := make(chan struct{})
	var loseOnce sync.Once
	lose := func() { loseOnce.Do(func() { close(lost) }); cancelSess() }

	type consumer struct {
		ch  *amqp.Channel
		tag string
	}
	var consumers []consumer
	var wg sync.WaitGroup
	workerDone := make(chan struct{}, c.cfg.Concurrency)
	for i := range c.cfg.Concurrency {
		ch, err := conn.Channel()
		if err != nil {
			return c.abort(conn, lose, &wg, fmt.Errorf("open channel: %w", err))
		}
		if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
			return c.abort(conn, lose, &wg, fmt.Errorf("set prefetch: %w", err))
		}
		tag := fmt.Sprintf("jobsd-%s-%d", c.instance, i)
		deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, nil)
		if err != nil {
			return c.abort(conn, lose, &wg, fmt.Errorf("consume %s: %w", c.cfg.Queue, err))
		}
		consumers = append(consumers, consumer{ch, tag})
		// amqp091 hands deliveries over an unbuffered channel, one goroutine
		// switch each; buffering them here lets a worker that comes back from
		// a transaction take everything that arrived meanwhile as one batch.
		buffered := make(chan amqp.Delivery, c.cfg.Prefetch)
		wg.Go(func() {
			defer close(buffered)
			for d := range deliveries {
				buffered <- d
			}
		})
		// The worker stops handling when its own channel closes too (the
		// broker's consumer_timeout closes the channel of a consumer that
		// held deliveries unacked too long: they are back in the queue).
		// This goroutine ends when conn closes, at the latest when Run
		// closes it after the session.
		chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
		workerLost := make(chan struct{})
		workerCtx, cancelWorker := context.WithCancel(sessCtx)
		go func() {
			select {
			case <-chClosed:
			case <-lost:
			}
			close(workerLost)
			cancelWorker()
		}()
		w := &worker{c: c, deliveries: buffered, lost: workerLost}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(workerCtx)
			workerDone <- struct{}{}
		}()
	}

	c.connected.Store(true)
	defer c.connected.Store(false)
	c.readyOne.Do(func() { close(c.ready) })

	select {
	case <-ctx.Done():
		// Stop the broker from sending more; each worker finishes what it
		// already received, then its deliveries channel closes.
		for _, cons := range consumers {
			if err := cons.ch.Cancel(cons.tag, false); err != nil {
				c.log.Debug("cancel consumer", "err", err)
			}
		}
		cancelSess()
		wg.Wait()
		return nil
	case err := <-closed:
		lose()
		wg.Wait()
		if err == nil {
			return errors.New("connection closed")
		}
		return err
	case <-workerDone:
		// A consumer ended while the connection lives: the broker cancelled
		// it (queue deleted?) or closed its channel (consumer_timeout: it
		// held deliveries unacked too long). Start over.
		return c.abort(conn, lose, &wg, errors.New("the broker cancelled the consumer or closed its channel "+
			"(was the queue deleted? were messages held past the broker's consumer_timeout?)"))
	}
}

// abort marks the session lost, closes conn, waits for the workers and
// returns err.
func (c *Consumer) abort(conn *amqp.Connection, lose func(), wg *sync.WaitGroup, err error) error {
	lose()
	_ = conn.Close()
	wg.Wait()
	return err
}

// backoff is RetryBackoff doubled per attempt, capped at RetryBackoffMax,
// minus up to 20% jitter.
func (c *Consumer) backoff(attempt int) time.Duration {
	return jitter(c.backoffStep(attempt))
}

// backoffStep is backoff without the jitter.
func (c *Consumer) backoffStep(attempt int) time.Duration {
	d := c.cfg.RetryBackoff
	for range min(attempt, 30) {
		d *= 2
		if d >= c.cfg.RetryBackoffMax {
			return c.cfg.RetryBackoffMax
		}
	}
	return d
}

// jitter subtracts up to 20% from d.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// sleep waits d or until ctx is done; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
