package relay

import (
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exchange types of Config.ExchangeType.
const (
	// ExchangeTopic routes each message to the queues whose binding keys
	// match its topic ("user.*", "order.#", "#" for all).
	ExchangeTopic = amqp.ExchangeTopic
	// ExchangeFanout gives every bound queue every message.
	ExchangeFanout = amqp.ExchangeFanout
)

// exchange is the relay's view of its exchange across connections: the type
// to declare it with, which is the configured one until the broker says the
// exchange exists with another, and the warning logged once about that.
type exchange struct {
	mu   sync.Mutex
	kind string // "" until the first declaration; then the type that works
	warn sync.Once
}

// declareExchange declares the durable exchange on ch and returns the
// channel to go on with. An exchange that already exists with another type
// (an older jobsd declared every exchange fanout) or other settings cannot be
// redeclared: the broker answers PRECONDITION_FAILED and closes ch. The relay
// then uses the exchange as it is, on a new channel, and logs once per Relay
// what that means and how to change it. Routing keys are the topics either
// way.
func (u *run) declareExchange(conn *amqp.Connection, ch *amqp.Channel) (*amqp.Channel, error) {
	name, want := u.cfg.Exchange, u.cfg.ExchangeType
	u.exchange.mu.Lock()
	defer u.exchange.mu.Unlock()
	kind := u.exchange.kind
	if kind == "" {
		kind = want
	}
	err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil)
	if !preconditionFailed(err) {
		if err == nil {
			u.exchange.kind = kind
		}
		return ch, err
	}
	first := err
	// The type it has, if it is the other one jobsd knows: declaring an
	// exchange as it is succeeds and changes nothing.
	other := ExchangeFanout
	if kind == ExchangeFanout {
		other = ExchangeTopic
	}
	if ch, err = conn.Channel(); err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err = ch.ExchangeDeclare(name, other, true, false, false, false, nil); err == nil {
		u.exchange.kind = other
		u.warnExchange(other)
		return ch, nil
	}
	if !preconditionFailed(err) {
		return nil, err
	}
	// Another type (direct, headers) or not durable: use it as it is.
	if ch, err = conn.Channel(); err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err = ch.ExchangeDeclarePassive(name, kind, true, false, false, false, nil); err != nil {
		return nil, first
	}
	u.warnExchange("")
	return ch, nil
}

// warnExchange logs, once per Relay, that the exchange exists as kind ("":
// with other settings) instead of the configured type, and what to do.
func (u *run) warnExchange(kind string) {
	u.exchange.warn.Do(func() {
		u.log.Warn(exchangeWarning(u.cfg.Exchange, kind, u.cfg.ExchangeType))
	})
}

// exchangeWarning says that exchange name exists as kind ("": with other
// settings) rather than as a durable want exchange, what that means for the
// consumers and how to get what was configured.
func exchangeWarning(name, kind, want string) string {
	fix := fmt.Sprintf("create a new exchange (--exchange %s.v2 --exchange-type %s) or delete %q while nothing uses it", name, want, name)
	switch {
	case kind == ExchangeFanout:
		return fmt.Sprintf("exchange %q exists as fanout, not %s: binding keys are ignored and every queue gets every event; "+
			"to route by topic, %s", name, want, fix)
	case kind == ExchangeTopic:
		return fmt.Sprintf("exchange %q exists as topic, not %s: it routes by topic, so a queue gets only the events its binding keys match "+
			"(bind with '#' to get all); to use a fanout exchange, %s", name, want, fix)
	default:
		return fmt.Sprintf("exchange %q exists with other settings than a durable %s exchange (another type, or not durable); "+
			"using it as it is; to get a durable %s exchange, %s", name, want, want, fix)
	}
}

func preconditionFailed(err error) bool {
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Code == amqp.PreconditionFailed
}
