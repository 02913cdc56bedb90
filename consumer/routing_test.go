package consumer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/relay"
)

// runRelay runs a relay publishing the bundle's outbox to exchange until the
// test ends.
func runRelay(t *testing.T, b *bundle, cfg relay.Config) {
	t.Helper()
	cfg.PollInterval = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	r, err := relay.New(b.db.Pool, b.broker.URL, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// writeTopics commits one outbox event per topic.
func writeTopics(t *testing.T, b *bundle, topics ...string) {
	t.Helper()
	var events []outbox.Event
	for _, tp := range topics {
		events = append(events, outbox.Event{Topic: tp, Payload: map[string]any{"n": 1}})
	}
	require.NoError(t, pgx.BeginFunc(context.Background(), b.db.Pool, func(tx pgx.Tx) error {
		return outbox.Write(context.Background(), tx, events...)
	}))
}

// countedTopics returns analytics_counts as topic -> n.
func countedTopics(t *testing.T, b *bundle) map[string]int64 {
	t.Helper()
	rows, err := b.db.Pool.Query(context.Background(), `SELECT topic, sum(n) FROM analytics_counts GROUP BY topic`)
	require.NoError(t, err)
	out := map[string]int64{}
	var topic string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&topic, &n}, func() error { out[topic] = n; return nil })
	require.NoError(t, err)
	return out
}

// TestTopicRouting: two consumer groups bound with different keys to the
// relay's topic exchange each get only the topics their keys match.
func TestTopicRouting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	users, orders := b.config(), b.config()
	users.Queue, users.BindingKeys = b.broker.Name("users"), []string{"user.*"}
	orders.Queue, orders.BindingKeys = b.broker.Name("orders"), []string{"order.#"}
	u := start(t, b.db.Pool, b.broker.URL, users)
	o := start(t, b.db.Pool, b.broker.URL, orders)
	runRelay(t, b, relay.Config{Exchange: b.exchange})

	writeTopics(t, b, "user.signed_up", "order.created", "user.profile.updated", "order.paid.eu", "billing.invoiced", "user.deleted")
	eventually(t, "each consumer got its 2 events", func() bool {
		return u.Stats().Processed == 2 && o.Stats().Processed == 2
	})
	require.Equal(t, map[string]int64{"user.signed_up": 1, "user.deleted": 1, "order.created": 1, "order.paid.eu": 1}, countedTopics(t, b))
	require.False(t, b.logs.Contains("level=WARN"), b.logs.String())
}

// TestExistingFanoutExchange: on an exchange that an older jobsd declared
// fanout, the relay (configured for topic) and a consumer with binding keys
// use it as it is: the consumer gets every event, and warns once, also
// across reconnections.
func TestExistingFanoutExchange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.broker.Channel().ExchangeDeclare(b.exchange, amqp.ExchangeFanout, true, false, false, false, nil))
	p := b.broker.NewProxy()
	cfg := b.config()
	cfg.BindingKeys = []string{"user.*"}
	c := start(t, b.db.Pool, p.URL, cfg)
	runRelay(t, b, relay.Config{Exchange: b.exchange})

	writeTopics(t, b, "user.signed_up", "order.created")
	eventually(t, "both events", func() bool { return c.Stats().Processed == 2 })
	p.Cut() // the consumer reconnects and declares again
	writeTopics(t, b, "order.paid")
	eventually(t, "the third event", func() bool { return c.Stats().Processed == 3 })

	warning := `exchange \"` + b.exchange + `\" exists as fanout, not topic: binding keys are ignored`
	require.Equal(t, 2, b.logs.Count(warning), "one from the relay, one from the consumer: %s", b.logs.String())
	require.Equal(t, 2, b.logs.Count(`level=WARN msg="exchange`), b.logs.String())
}

// TestFanoutExchange: a consumer configured for fanout gets every event; with
// binding keys it says once that they are ignored.
func TestFanoutExchange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config()
	cfg.ExchangeType = consumer.ExchangeFanout
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	keyed := cfg
	keyed.Queue, keyed.BindingKeys = b.broker.Name("keyed"), []string{"user.*"}
	k := start(t, b.db.Pool, b.broker.URL, keyed)
	require.NoError(t, b.broker.Channel().ExchangeDeclare(b.exchange, amqp.ExchangeFanout, true, false, false, false, nil),
		"the consumer declared a durable fanout exchange")

	order := event(newID())
	order.Type = "order.created"
	publish(t, b.broker, b.exchange, event(newID()), order)
	eventually(t, "both consumers got both events", func() bool {
		return c.Stats().Processed == 2 && k.Stats().Processed == 2
	})
	require.Equal(t, 1, b.logs.Count("level=WARN"), b.logs.String())
	require.Equal(t, 1, b.logs.Count("is fanout: binding keys are ignored"), b.logs.String())
}
