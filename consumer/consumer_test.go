package consumer_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/testdb"
)

func TestExactlyOnceWithDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGate()
	cfg := b.config()
	cfg.Concurrency = 1
	cfg.Handler = g.wrap(consumer.AnalyticsHandler)
	c := start(t, b.db.Pool, b.broker.URL, cfg)

	// The same id twice within one batch.
	first, second := event(newID()), event(newID())
	g.hold(t, b, first, first, second)
	eventually(t, "4 deliveries settled", func() bool { return settled(c) == 4 })

	// The same id again, in a later batch.
	publish(t, b.broker, b.exchange, first)
	eventually(t, "5 deliveries settled", func() bool { return settled(c) == 5 })

	// A consumer that crashed after its commit and before its ack: the id is
	// in the inbox and the broker redelivers the message.
	crashed := event(newID())
	_, err := b.db.Pool.Exec(context.Background(),
		"INSERT INTO consumer_inbox (queue, message_id) VALUES ($1, $2)", b.queue, crashed.MessageId)
	require.NoError(t, err)
	publish(t, b.broker, b.exchange, crashed)
	eventually(t, "6 deliveries settled", func() bool { return settled(c) == 6 })
	c.stop(t)

	require.Equal(t, consumer.Stats{Processed: 3, Duplicates: 3}, c.Stats()) // gate, first, second
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 3, n, "each distinct message counted once")
	require.EqualValues(t, 4, inbox)
	var day time.Time
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT day FROM analytics_counts WHERE topic = 'user.signed_up'").Scan(&day))
	require.Equal(t, "2024-03-01", day.Format(time.DateOnly), "day of the message timestamp in UTC")
}

func TestDayWithoutTimestampIsToday(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := start(t, b.db.Pool, b.broker.URL, b.config())
	msg := event(newID())
	msg.Timestamp = time.Time{}
	msg.Type = "user.deleted"
	before := time.Now().UTC().Format(time.DateOnly)
	publish(t, b.broker, b.exchange, msg)
	eventually(t, "message processed", func() bool { return c.Stats().Processed == 1 })
	after := time.Now().UTC().Format(time.DateOnly)
	var day time.Time
	var n int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT day, n FROM analytics_counts WHERE topic = 'user.deleted'").Scan(&day, &n))
	require.EqualValues(t, 1, n)
	require.Contains(t, []string{before, after}, day.Format(time.DateOnly))
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := start(t, b.db.Pool, b.broker.URL, b.config())

	noID := event("")
	notJSON := event(newID())
	notJSON.Body = []byte(`{"user_id": 42`)
	noType := event(newID())
	noType.Type = ""
	badText := event("id-with-\x00-nul")
	notUUID := event("order-42")
	good1, good2 := event(newID()), event(strings.ToUpper(newID())) // a UUID in upper case is fine
	publish(t, b.broker, b.exchange, good1, noID, notJSON, noType, badText, notUUID, good2)

	eventually(t, "7 deliveries settled", func() bool { return settled(c) == 7 })
	require.Equal(t, consumer.Stats{Processed: 2, Rejected: 5}, c.Stats())

	var dead []amqp.Delivery
	eventually(t, "5 messages in the dead-letter queue", func() bool {
		dead = append(dead, drainDead(t, b.broker, b.queue)...)
		return len(dead) >= 5
	})
	var deadIDs []string
	for _, d := range dead {
		deadIDs = append(deadIDs, d.MessageId)
		require.NotEmpty(t, d.Headers["x-death"], "dead-lettered by the broker, with its x-death header")
	}
	require.ElementsMatch(t, []string{"", notJSON.MessageId, noType.MessageId, badText.MessageId, notUUID.MessageId}, deadIDs)

	// Consumption goes on after the rejects.
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "the next good message processed", func() bool { return c.Stats().Processed == 3 })
	c.stop(t)
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 3, n)
	require.EqualValues(t, 3, inbox)
	require.True(t, b.logs.Contains("body is not valid JSON"), "the reject is logged with its reason")
	require.True(t, b.logs.Contains("message id is not a UUID"))
	var stored string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT message_id::text FROM consumer_inbox WHERE message_id = $1::uuid", good2.MessageId).Scan(&stored))
	require.Equal(t, strings.ToLower(good2.MessageId), stored)
}

func TestHandlerErrorRetriesUntilItSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	var redelivered atomic.Bool
	cfg := b.config()
	cfg.Handler = func(ctx context.Context, tx pgx.Tx, batch []consumer.Delivery) error {
		switch calls.Add(1) {
		case 1, 3:
			return errors.New("injected: downstream unavailable")
		case 2:
			panic("injected: a bug in the handler")
		}
		redelivered.Store(batch[0].Redelivered)
		return consumer.AnalyticsHandler(ctx, tx, batch)
	}
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "message processed", func() bool { return c.Stats().Processed == 1 })
	c.stop(t)

	require.Equal(t, consumer.Stats{Processed: 1, HandlerRetries: 3}, c.Stats(), "retried in the process, never requeued")
	require.EqualValues(t, 4, calls.Load())
	require.False(t, redelivered.Load(), "the broker delivered the message once")
	require.True(t, b.logs.Contains("handler panicked: injected: a bug in the handler"))
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 1, n, "effects of failed attempts were rolled back")
	require.EqualValues(t, 1, inbox)
}

// TestRepeatedHandlerErrorDeadLetters: a message whose handler keeps failing
// with an ordinary (not permanent, not database) error is dead-lettered after
// MaxAttempts tries instead of looping; the queue goes on.
func TestRepeatedHandlerErrorDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	poison := event(newID())
	var poisonCalls atomic.Int32
	cfg := b.config()
	cfg.MaxAttempts = 3
	cfg.Handler = consumer.Each(func(ctx context.Context, tx pgx.Tx, d consumer.Delivery) error {
		if d.MessageID == poison.MessageId {
			poisonCalls.Add(1)
			return errors.New("injected: this event always fails")
		}
		return consumer.AnalyticsHandler(ctx, tx, []consumer.Delivery{d})
	})
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	publish(t, b.broker, b.exchange, poison)
	eventually(t, "the poison message settled", func() bool { return settled(c) == 1 })
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "the next message processed", func() bool { return c.Stats().Processed == 1 })
	c.stop(t)

	require.Equal(t, consumer.Stats{Processed: 1, Rejected: 1, HandlerRetries: 2}, c.Stats())
	require.EqualValues(t, 3, poisonCalls.Load(), "MaxAttempts tries")
	require.True(t, b.logs.Contains("the handler failed 3 times (MaxAttempts)"))
	var dead []amqp.Delivery
	eventually(t, "the poison message in the dead-letter queue", func() bool {
		dead = append(dead, drainDead(t, b.broker, b.queue)...)
		return len(dead) >= 1
	})
	require.Len(t, dead, 1)
	require.Equal(t, poison.MessageId, dead[0].MessageId)
	require.False(t, dead[0].Redelivered && dead[0].Headers["x-delivery-count"] != nil, "never requeued")
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 1, n)
	require.EqualValues(t, 1, inbox, "the poison message's inbox row was rolled back")
}

func TestPermanentErrorDeadLettersOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGate()
	poison := event(newID())
	cfg := b.config()
	cfg.Concurrency = 1
	cfg.Handler = g.wrap(consumer.Each(func(ctx context.Context, tx pgx.Tx, d consumer.Delivery) error {
		if d.MessageID == poison.MessageId {
			return consumer.Permanent(errors.New("cannot count this event"))
		}
		return consumer.AnalyticsHandler(ctx, tx, []consumer.Delivery{d})
	}))
	c := start(t, b.db.Pool, b.broker.URL, cfg)

	msgs := append(events(3), poison)
	msgs = append(msgs, events(3)...)
	g.hold(t, b, msgs...) // all seven reach the worker as one batch
	eventually(t, "8 deliveries settled", func() bool { return settled(c) == 8 })
	c.stop(t)

	require.Equal(t, consumer.Stats{Processed: 7, Rejected: 1}, c.Stats())
	require.True(t, b.logs.Contains("retrying its messages one by one"))
	var dead []amqp.Delivery
	eventually(t, "the poison message in the dead-letter queue", func() bool {
		dead = append(dead, drainDead(t, b.broker, b.queue)...)
		return len(dead) >= 1
	})
	require.Len(t, dead, 1)
	require.Equal(t, poison.MessageId, dead[0].MessageId)
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 7, n)
	require.EqualValues(t, 7, inbox, "the poison message's inbox row was rolled back")
}

// dbOutage takes a test database away for real: new connections are refused
// and the open ones terminated, until the returned function brings it back.
func dbOutage(t *testing.T, dbName string) (restore func()) {
	t.Helper()
	admin, err := pgx.Connect(context.Background(), testdb.ServerURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	name := pgx.Identifier{dbName}.Sanitize()
	allow := func(on bool) {
		_, err := admin.Exec(context.Background(), "ALTER DATABASE "+name+" ALLOW_CONNECTIONS "+map[bool]string{true: "true", false: "false"}[on])
		require.NoError(t, err)
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	_, err = admin.Exec(context.Background(),
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName)
	require.NoError(t, err)
	return func() { allow(true) }
}

// redeliveries wraps h and counts the deliveries it sees that the broker
// delivered before.
func redeliveries(h consumer.Handler, n *atomic.Int32) consumer.Handler {
	return func(ctx context.Context, tx pgx.Tx, batch []consumer.Delivery) error {
		for _, d := range batch {
			if d.Redelivered || d.Headers["x-delivery-count"] != nil {
				n.Add(1)
			}
		}
		return h(ctx, tx, batch)
	}
}

// TestDatabaseDown keeps the consumer's database away for more than 20
// back-offs (RabbitMQ 4's default delivery limit): the consumer holds its
// deliveries unacked and retries in the process, so nothing is requeued,
// redelivered or dead-lettered, even with a delivery limit of 2, and every
// effect is applied exactly once after the database is back.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool, err := pgxpool.New(context.Background(), b.db.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var redelivered atomic.Int32
	cfg := b.config()
	cfg.RetryBackoff, cfg.RetryBackoffMax = 10*time.Millisecond, 20*time.Millisecond
	cfg.DeliveryLimit = 2 // requeue cycling would dead-letter at the second return
	cfg.Prefetch, cfg.BatchSize, cfg.Concurrency = 20, 10, 1
	cfg.Handler = redeliveries(consumer.AnalyticsHandler, &redelivered)
	c := start(t, pool, b.broker.URL, cfg)
	require.Equal(t, consumer.Health{Broker: true, Database: true}, c.Health(), "no transaction needed yet")

	restore := dbOutage(t, pool.Config().ConnConfig.Database)
	msgs := events(50)
	publish(t, b.broker, b.exchange, msgs...)
	eventually(t, "more than 20 retries while the database is down", func() bool { return c.Stats().DatabaseRetries > 25 })
	s := c.Stats()
	require.Zero(t, s.Processed)
	require.Equal(t, consumer.Health{Broker: true, Database: false}, c.Health(), "the last transaction failed")
	require.False(t, c.Health().Ready())
	require.Zero(t, s.Requeued, "nothing nacked with requeue")
	require.Zero(t, s.Rejected)
	require.Empty(t, drainDead(t, b.broker, b.queue), "nothing dead-lettered")
	require.Less(t, b.logs.Count("database unavailable, holding the messages"), int(s.DatabaseRetries)/2,
		"logged once per backoff step, not per attempt")

	restore()
	eventually(t, "all processed after the database is back", func() bool { return c.Stats().Processed == 50 })
	require.True(t, c.Health().Ready(), "the last transaction succeeded")
	c.stop(t)
	require.False(t, c.Health().Broker, "stopped")
	s = c.Stats()
	require.Zero(t, s.Requeued)
	require.Zero(t, s.Rejected)
	require.Zero(t, redelivered.Load(), "no message was delivered twice")
	require.Empty(t, drainDead(t, b.broker, b.queue), "nothing dead-lettered")
	require.Zero(t, queueDepth(t, b.broker, b.queue))
	require.True(t, b.logs.Contains("database is back, applied the held messages"))
	fresh := testdbPool(t, b.db.URL)
	n, inbox := totals(t, fresh, b.queue)
	require.EqualValues(t, 50, n)
	require.EqualValues(t, 50, inbox)
	t.Logf("stats after the outage: %+v", s)
}

// TestStopWhileDatabaseDown stops a consumer that holds messages through an
// outage: it returns them to the queue once, and Run returns nil.
func TestStopWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool, err := pgxpool.New(context.Background(), b.db.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cfg := b.config()
	cfg.RetryBackoff, cfg.RetryBackoffMax = 10*time.Millisecond, 20*time.Millisecond
	c := start(t, pool, b.broker.URL, cfg)

	restore := dbOutage(t, pool.Config().ConnConfig.Database)
	publish(t, b.broker, b.exchange, events(10)...)
	eventually(t, "messages held", func() bool { return c.Stats().DatabaseRetries > 0 && queueDepth(t, b.broker, b.queue) == 0 })
	c.stop(t)
	require.EqualValues(t, 10, c.Stats().Requeued, "returned to the queue once")
	require.Zero(t, c.Stats().Processed)
	eventually(t, "the messages back in the queue", func() bool { return queueDepth(t, b.broker, b.queue) == 10 })
	require.Empty(t, drainDead(t, b.broker, b.queue))

	restore()
	c2 := start(t, testdbPool(t, b.db.URL), b.broker.URL, cfg)
	eventually(t, "processed by the next consumer", func() bool { return c2.Stats().Processed == 10 })
	c2.stop(t)
}

func TestBrokerConnectionLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.broker.NewProxy()
	cfg := b.config()
	cfg.Prefetch, cfg.BatchSize = 50, 10 // many unacked messages in flight when the cut comes
	c := start(t, b.db.Pool, p.URL, cfg)

	first := events(500)
	publish(t, b.broker, b.exchange, first...)
	eventually(t, "processing under way", func() bool { return c.Stats().Processed >= 100 })
	p.Refuse(true)
	p.Cut()
	eventually(t, "a failed redial", func() bool { return b.logs.Contains("broker still unreachable") })
	// Published while the consumer is away: only a reconnected consumer gets them.
	second := events(500)
	publish(t, b.broker, b.exchange, second...)
	p.Refuse(false)

	eventually(t, "all 1000 processed", func() bool { return c.Stats().Processed == 1000 })
	c.stop(t)
	require.True(t, b.logs.Contains("reconnected to the broker"))
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 1000, n)
	require.EqualValues(t, 1000, inbox)
	require.Zero(t, queueDepth(t, b.broker, b.queue))
	t.Logf("duplicates after the cut (redelivered after commit, acks lost): %d", c.Stats().Duplicates)
}

func TestCompetingConsumers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	cfg := b.config()
	cfg.Prefetch, cfg.Concurrency, cfg.Registerer = 10, 1, reg
	c1 := start(t, b.db.Pool, b.broker.URL, cfg)
	c2 := start(t, b.db.Pool, b.broker.URL, cfg)

	msgs := events(1000)
	msgs = append(msgs, msgs[:100]...) // and 100 duplicates
	publish(t, b.broker, b.exchange, msgs...)
	eventually(t, "all settled", func() bool { return settled(c1, c2) == 1100 })
	c1.stop(t)
	c2.stop(t)

	s1, s2 := c1.Stats(), c2.Stats()
	t.Logf("consumer 1: %+v, consumer 2: %+v", s1, s2)
	require.NotZero(t, s1.Processed, "both consumers get work")
	require.NotZero(t, s2.Processed, "both consumers get work")
	require.EqualValues(t, 1000, s1.Processed+s2.Processed)
	require.EqualValues(t, 100, s1.Duplicates+s2.Duplicates)
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 1000, n)
	require.EqualValues(t, 1000, inbox)

	got := map[string]float64{}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		switch f.GetName() {
		case "jobsd_consumer_lag_seconds":
			// One histogram shared by both consumers: every applied message.
			require.Len(t, f.GetMetric(), 1)
			require.EqualValues(t, 1100, f.GetMetric()[0].GetHistogram().GetSampleCount())
		case "jobsd_consumer_batch_duration_seconds":
			require.Len(t, f.GetMetric(), 1)
			require.NotZero(t, f.GetMetric()[0].GetHistogram().GetSampleCount())
		}
		if f.GetName() != "jobsd_consumer_messages_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			require.Equal(t, b.queue, labels["queue"])
			got[labels["result"]] = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, map[string]float64{"processed": 1000, "duplicate": 100, "rejected": 0, "requeued": 0}, got)
}

// TestStopDrains stops a consumer while a batch is in its handler and more
// messages wait in its prefetch buffer: it finishes them all, then Run returns.
func TestStopDrains(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := newGate()
	cfg := b.config()
	cfg.Concurrency = 1
	cfg.Handler = g.wrap(consumer.AnalyticsHandler)
	c := start(t, b.db.Pool, b.broker.URL, cfg)

	g.publishGate(t, b)
	publish(t, b.broker, b.exchange, events(20)...)
	eventually(t, "all messages delivered to the consumer", func() bool { return queueDepth(t, b.broker, b.queue) == 0 })
	c.cancel()
	close(g.release)
	c.stop(t)

	require.Equal(t, consumer.Stats{Processed: 21}, c.Stats())
	n, _ := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 21, n)
	require.Zero(t, queueDepth(t, b.broker, b.queue))
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	url := "amqp://guest:guest@127.0.0.1:5672/"
	for name, tc := range map[string]struct {
		cfg  consumer.Config
		url  string
		want string
	}{
		"no queue":            {cfg: consumer.Config{}, want: "Queue is required"},
		"reserved queue":      {cfg: consumer.Config{Queue: "amq.x"}, want: "reserves"},
		"batch over prefetch": {cfg: consumer.Config{Queue: "q", Prefetch: 10, BatchSize: 11}, want: "BatchSize must be between 1 and Prefetch (10)"},
		"negative prefetch":   {cfg: consumer.Config{Queue: "q", Prefetch: -1}, want: "Prefetch must be between"},
		"zero attempts":       {cfg: consumer.Config{Queue: "q", MaxAttempts: -1}, want: "MaxAttempts must be at least 1"},
		"bad delivery limit":  {cfg: consumer.Config{Queue: "q", DeliveryLimit: -2}, want: "DeliveryLimit must be positive, or -1"},
		"bad url":             {cfg: consumer.Config{Queue: "q"}, url: "http://user:s3cret@host/", want: "invalid AMQP URL http://user:xxxxx@host/"},
	} {
		t.Run(name, func(t *testing.T) {
			u := url
			if tc.url != "" {
				u = tc.url
			}
			_, err := consumer.New(db.Pool, u, tc.cfg)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	cfg := consumer.Config{Queue: "q"}
	_, err := consumer.New(db.Pool, url, cfg)
	require.NoError(t, err)
	require.Equal(t, consumer.Config{Queue: "q"}, cfg, "New does not change the caller's Config")
}

func TestRunFailsFast(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := func(pool *pgxpool.Pool, url string, cfg consumer.Config) error {
		c, err := consumer.New(pool, url, cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		return c.Run(ctx)
	}

	t.Run("broker unreachable", func(t *testing.T) {
		p := b.broker.NewProxy()
		p.Refuse(true)
		err := run(b.db.Pool, p.URL, b.config())
		require.ErrorContains(t, err, "cannot reach RabbitMQ at amqp://guest:xxxxx@127.0.0.1:")
		require.NotContains(t, err.Error(), "guest:guest")
	})
	t.Run("queue exists with other settings", func(t *testing.T) {
		cfg := b.config()
		cfg.Queue = b.broker.Name("classic")
		_, err := b.broker.Channel().QueueDeclare(cfg.Queue, true, false, false, false, nil)
		require.NoError(t, err)
		err = run(b.db.Pool, b.broker.URL, cfg)
		require.ErrorContains(t, err, "exists with other settings")
	})
	t.Run("schema missing", func(t *testing.T) {
		db := testdb.New(t)
		_, err := db.Pool.Exec(context.Background(), "DROP TABLE consumer_inbox")
		require.NoError(t, err)
		err = run(db.Pool, b.broker.URL, b.config())
		require.ErrorContains(t, err, "run `jobsd migrate`")
	})
}

// gate holds the batch that contains its message in the Handler until
// released, so that a test can line up what the next batch will contain.
type gate struct {
	msg     amqp.Publishing
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{msg: event(newID()), entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) wrap(h consumer.Handler) consumer.Handler {
	return func(ctx context.Context, tx pgx.Tx, batch []consumer.Delivery) error {
		for _, d := range batch {
			if d.MessageID == g.msg.MessageId {
				close(g.entered)
				<-g.release
			}
		}
		return h(ctx, tx, batch)
	}
}

// publishGate publishes the gate message and waits until its batch is held.
func (g *gate) publishGate(t *testing.T, b *bundle) {
	t.Helper()
	publish(t, b.broker, b.exchange, g.msg)
	select {
	case <-g.entered:
	case <-time.After(testTimeout):
		t.Fatal("the gate message never reached the handler")
	}
}

// hold publishes msgs while the gate holds the (single) worker, waits until
// the broker pushed them all to the consumer, and releases the gate: msgs then
// form the next batch.
func (g *gate) hold(t *testing.T, b *bundle, msgs ...amqp.Publishing) {
	t.Helper()
	g.publishGate(t, b)
	publish(t, b.broker, b.exchange, msgs...)
	eventually(t, "messages delivered to the consumer", func() bool { return queueDepth(t, b.broker, b.queue) == 0 })
	close(g.release)
}

func testdbPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestConnectionLostMidTransaction: the database connection dies inside the
// batch's transaction (the handler's own backend is terminated). That is a
// database error, not a handler failure: the batch is held and retried,
// never dead-lettered nor requeued.
func TestConnectionLostMidTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	cfg := b.config()
	cfg.MaxAttempts = 1 // a handler error would dead-letter at once
	cfg.Handler = func(ctx context.Context, tx pgx.Tx, batch []consumer.Delivery) error {
		if calls.Add(1) <= 2 {
			_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			return err
		}
		return consumer.AnalyticsHandler(ctx, tx, batch)
	}
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "message processed", func() bool { return c.Stats().Processed == 1 })
	c.stop(t)
	require.Equal(t, consumer.Stats{Processed: 1, DatabaseRetries: 2}, c.Stats())
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 1, n)
	require.EqualValues(t, 1, inbox)
}

// TestFailsOverBetweenBrokers: with several AMQP URLs (a cluster's nodes),
// the consumer starts on the first that answers and moves to another when
// its broker goes away; every message is applied once.
func TestFailsOverBetweenBrokers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first, second := b.broker.NewProxy(), b.broker.NewProxy()
	down := strings.Replace(b.broker.URL, "127.0.0.1:5672", "127.0.0.1:1", 1)
	c := start(t, b.db.Pool, down+","+first.URL+","+second.URL, b.config())
	publish(t, b.broker, b.exchange, events(50)...)
	eventually(t, "50 processed", func() bool { return c.Stats().Processed == 50 })

	first.Refuse(true)
	first.Cut()
	publish(t, b.broker, b.exchange, events(50)...)
	eventually(t, "100 processed", func() bool { return c.Stats().Processed == 100 })
	c.stop(t)
	n, inbox := totals(t, b.db.Pool, b.queue)
	require.EqualValues(t, 100, n, "each message counted once")
	require.EqualValues(t, 100, inbox)
}
