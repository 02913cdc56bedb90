package consumer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/internal/testlog"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait of these tests: generous, because the machine
// is shared and -race is slow; a test that hits it has failed.
const testTimeout = 60 * time.Second

// bundle is one test's world: its own database, exchange and queue.
type bundle struct {
	db       *testdb.DB
	broker   *testbroker.Broker
	exchange string
	queue    string
	logs     *logBuffer
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := testbroker.New(t)
	return &bundle{
		db:       testdb.New(t),
		broker:   b,
		exchange: b.Name("x"),
		queue:    b.Name("q"),
		logs:     &logBuffer{},
	}
}

// config is a Config for the bundle's queue with fast retries.
func (b *bundle) config() consumer.Config {
	return consumer.Config{
		Queue:        b.queue,
		Exchange:     b.exchange,
		RetryBackoff: 20 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// running is a Consumer whose Run goroutine the test controls.
type running struct {
	*consumer.Consumer
	cancel context.CancelFunc
	done   chan error
}

// start runs a Consumer on pool and url until stop or the end of the test, and
// returns once it consumes.
func start(t *testing.T, pool *pgxpool.Pool, url string, cfg consumer.Config) *running {
	t.Helper()
	c, err := consumer.New(pool, url, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Consumer: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-c.Ready():
	case err := <-r.done:
		r.done <- err
		t.Fatalf("consumer stopped before it was ready: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("consumer not ready in time")
	}
	return r
}

// stop cancels Run and waits for it to drain and return (idempotent).
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			require.NoError(t, err, "Run must return nil on a clean stop")
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// event is a message as the relay publishes it.
func event(id string) amqp.Publishing {
	return amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Type:         "user.signed_up",
		Timestamp:    time.Date(2024, 2, 29, 23, 30, 0, 0, time.FixedZone("EST", -5*3600)), // 2024-03-01 in UTC
		ContentType:  "application/json",
		Body:         []byte(`{"user_id":42,"email":"ada@example.com"}`),
	}
}

// events returns n events with fresh ids.
func events(n int) []amqp.Publishing {
	out := make([]amqp.Publishing, n)
	for i := range out {
		out[i] = event(newID())
	}
	return out
}

// publish sends msgs to exchange on its own confirming channel and waits until
// the broker confirmed them all.
func publish(t *testing.T, b *testbroker.Broker, exchange string, msgs ...amqp.Publishing) {
	t.Helper()
	ch := b.Channel()
	require.NoError(t, ch.Confirm(false))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, m.Type, false, false, m) // routing key = topic, as the relay
		require.NoError(t, err)
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		require.NoError(t, err)
		require.True(t, ok, "broker nacked a test message")
	}
}

// totals reads the consumer's effects: the sum of analytics_counts.n and the
// inbox rows of queue, in one snapshot.
func totals(t *testing.T, pool *pgxpool.Pool, queue string) (n, inbox int64) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `
		SELECT (SELECT coalesce(sum(n), 0) FROM analytics_counts),
		       (SELECT count(*) FROM consumer_inbox WHERE queue = $1)`, queue).Scan(&n, &inbox)
	require.NoError(t, err)
	return n, inbox
}

// eventually polls cond until it holds, failing the test after testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled is the number of deliveries the consumers have settled.
func settled(cs ...*running) uint64 {
	var n uint64
	for _, c := range cs {
		s := c.Stats()
		n += s.Processed + s.Duplicates + s.Rejected
	}
	return n
}

// queueDepth is the number of ready messages in queue.
func queueDepth(t *testing.T, b *testbroker.Broker, queue string) int {
	t.Helper()
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	return q.Messages
}

// drainDead takes every message from queue's dead-letter queue.
func drainDead(t *testing.T, b *testbroker.Broker, queue string) []amqp.Delivery {
	t.Helper()
	ch := b.Channel()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(consumer.DeadLetterQueue(queue), true)
		require.NoError(t, err)
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// logBuffer collects a consumer's logs for assertions.
type logBuffer struct{ testlog.Buffer }

func (l *logBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

func (l *logBuffer) Count(s string) int { return strings.Count(l.String(), s) }

// newID returns a random UUID (version 4) string, like outbox message ids.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
