package relay

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/outbox"
)

const waitTick = 10 * time.Millisecond

// logRecorder is a slog handler that keeps the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many messages contain s.
func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// bindQueue declares a queue of the test's name bound to exchange with keys
// and collects what reaches it.
func (h *harness) bindQueue(exchange string, keys ...string) *received {
	h.t.Helper()
	q := h.broker.Name("routed")
	ch := h.broker.Channel()
	_, err := ch.QueueDeclare(q, true, false, false, false, nil)
	require.NoError(h.t, err)
	for _, k := range keys {
		require.NoError(h.t, ch.QueueBind(q, k, exchange, false, nil))
	}
	got := newReceived()
	h.consumeInto(q, got)
	return got
}

func topics(r *received) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.all {
		out = append(out, d.RoutingKey)
	}
	return out
}

func writeTopics(t *testing.T, h *harness, topics ...string) {
	t.Helper()
	var events []outbox.Event
	for _, tp := range topics {
		events = append(events, outbox.Event{Topic: tp, Payload: map[string]any{}})
	}
	write(t, h.db.Pool, events...)
}

// TestRelayTopicExchangeRoutes: with the default topic exchange, queues
// bound with different keys each get only the topics they match.
func TestRelayTopicExchangeRoutes(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{noQueue: true})
	exchange := h.broker.Name("topic") // not declared yet: the relay declares it
	cfg := h.config()
	cfg.Exchange, cfg.ExchangeType = exchange, ""
	logs := &logRecorder{}
	cfg.Logger = slog.New(logs)
	r := h.start(h.broker.URL, cfg)
	require.Eventually(t, r.BrokerConnected, waitTimeout, waitTick)
	require.NoError(t, h.broker.Channel().ExchangeDeclarePassive(exchange, ExchangeTopic, true, false, false, false, nil))

	users := h.bindQueue(exchange, "user.*")
	orders := h.bindQueue(exchange, "order.#")
	writeTopics(t, h, "user.signed_up", "order.created", "user.profile.updated", "order.paid.eu", "billing.invoiced", "user.deleted")
	users.waitDistinct(t, 2)
	orders.waitDistinct(t, 2)
	require.Eventually(t, func() bool { return stateCounts(t, h.db.Pool)["published"] == 6 }, waitTimeout, waitTick)
	require.ElementsMatch(t, []string{"user.signed_up", "user.deleted"}, topics(users))
	require.ElementsMatch(t, []string{"order.created", "order.paid.eu"}, topics(orders))
	require.Zero(t, logs.count("WARN"))
}

// TestRelayExistingFanoutExchange: an exchange that an older jobsd declared
// fanout is used as it is by a relay configured for topic: it publishes,
// warns once (also across reconnections) and does not loop on the
// declaration.
func TestRelayExistingFanoutExchange(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{}) // declares h.exchange fanout, as older versions did
	routed := h.bindQueue(h.exchange, "user.*")
	p := h.broker.NewProxy()
	cfg := h.config()
	cfg.ExchangeType = ExchangeTopic
	logs := &logRecorder{}
	cfg.Logger = slog.New(logs)
	r := h.start(p.URL, cfg)

	writeTopics(t, h, "user.signed_up", "order.created")
	h.got.waitDistinct(t, 2)
	routed.waitDistinct(t, 2) // fanout: binding keys are ignored
	require.Eventually(t, func() bool { return stateCounts(t, h.db.Pool)["published"] == 2 }, waitTimeout, waitTick)

	p.Cut()
	writeTopics(t, h, "order.paid")
	h.got.waitDistinct(t, 3)
	require.Eventually(t, func() bool { return stateCounts(t, h.db.Pool)["published"] == 3 }, waitTimeout, waitTick)
	require.True(t, r.BrokerConnected())

	require.Equal(t, 1, logs.count(`exchange "`+h.exchange+`" exists as fanout, not topic`), "%q", logs.msgs)
	require.Equal(t, 1, logs.count("WARN exchange"))
	require.Equal(t, 2, logs.count("broker connected"), "one connection before the cut, one after: %q", logs.msgs)
	require.Zero(t, logs.count("broker closed the channel"))
}

// TestRelayFanoutExchange: an exchange configured fanout gives every queue
// every event, whatever its binding key.
func TestRelayFanoutExchange(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{noQueue: true})
	exchange := h.broker.Name("fanout")
	cfg := h.config()
	cfg.Exchange, cfg.ExchangeType = exchange, ExchangeFanout
	logs := &logRecorder{}
	cfg.Logger = slog.New(logs)
	r := h.start(h.broker.URL, cfg)
	require.Eventually(t, r.BrokerConnected, waitTimeout, waitTick)
	require.NoError(t, h.broker.Channel().ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil),
		"the relay declared a durable fanout exchange")

	a := h.bindQueue(exchange, "user.*")
	b := h.bindQueue(exchange, "")
	writeTopics(t, h, "user.signed_up", "order.created")
	a.waitDistinct(t, 2)
	b.waitDistinct(t, 2)
	require.Zero(t, logs.count("WARN"))
}

// TestExchangeWarning: the warning says what happened and what to do.
func TestExchangeWarning(t *testing.T) {
	t.Parallel()
	msg := exchangeWarning("analytics", ExchangeFanout, ExchangeTopic)
	require.Equal(t, `exchange "analytics" exists as fanout, not topic: binding keys are ignored and every queue gets every event; `+
		`to route by topic, create a new exchange (--exchange analytics.v2 --exchange-type topic) or delete "analytics" while nothing uses it`, msg)
	require.Contains(t, exchangeWarning("x", "", ExchangeTopic), "other settings")
	require.Contains(t, exchangeWarning("x", ExchangeTopic, ExchangeFanout), "--exchange-type fanout")
}
