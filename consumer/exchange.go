package consumer

import (
	"errors"
	"fmt"
	"slices"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exchange types of Config.ExchangeType.
const (
	// ExchangeTopic gives the queue the messages whose topic (routing key)
	// matches one of its BindingKeys.
	ExchangeTopic = amqp.ExchangeTopic
	// ExchangeFanout gives every bound queue every message; binding keys
	// are ignored.
	ExchangeFanout = amqp.ExchangeFanout
)

// declareExchange declares the durable exchange cfg.Exchange on ch and
// returns the channel to go on with and the exchange's type ("" when it is
// neither topic nor fanout, or not durable). kind is the type to try first.
// An exchange that exists with another type (every exchange an older jobsd
// declared is fanout) or other settings cannot be redeclared: the broker
// answers PRECONDITION_FAILED and closes ch. It is then used as it is, on a
// new channel. The relay does the same (relay/exchange.go).
func declareExchange(conn *amqp.Connection, ch *amqp.Channel, name, kind string) (*amqp.Channel, string, error) {
	err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil)
	if !preconditionFailed(err) {
		return ch, kind, err
	}
	first := err
	// Declaring an exchange as it is succeeds and changes nothing: is it the
	// other type jobsd knows?
	other := ExchangeFanout
	if kind == ExchangeFanout {
		other = ExchangeTopic
	}
	if ch, err = reopen(conn, ch); err != nil {
		return ch, "", err
	}
	if err = ch.ExchangeDeclare(name, other, true, false, false, false, nil); !preconditionFailed(err) {
		return ch, other, err
	}
	if ch, err = reopen(conn, ch); err != nil {
		return ch, "", err
	}
	if err = ch.ExchangeDeclarePassive(name, kind, true, false, false, false, nil); err != nil {
		return ch, "", first
	}
	return ch, "", nil
}

// logExchange logs, once per Consumer, that the exchange is not what was
// configured (kind "": another type or not durable), or that the binding keys
// are ignored because it is fanout. It warns when that changes what the queue
// receives (binding keys other than "#" that are ignored); otherwise it only
// informs.
func (c *Consumer) logExchange(kind string) {
	want, keys := c.cfg.ExchangeType, c.cfg.BindingKeys
	routed := !slices.Equal(keys, []string{BindingKeyAll})
	if kind == want && (kind == ExchangeTopic || !routed) {
		return
	}
	c.exchangeWarning.Do(func() {
		name := c.cfg.Exchange
		fix := fmt.Sprintf("create a new exchange (--exchange %s.v2 --exchange-type %s) or delete %q while nothing uses it",
			name, ExchangeTopic, name)
		switch {
		case kind == want: // fanout, with binding keys
			c.log.Warn(fmt.Sprintf("exchange %q is fanout: binding keys are ignored and the queue gets every event; to route by topic, %s",
				name, fix), "binding_keys", keys)
		case kind == ExchangeFanout:
			msg := fmt.Sprintf("exchange %q exists as fanout, not %s: binding keys are ignored and every queue gets every event; "+
				"to route by topic, %s", name, want, fix)
			if routed {
				c.log.Warn(msg, "binding_keys", keys)
			} else {
				c.log.Info(msg)
			}
		case kind == ExchangeTopic:
			c.log.Info(fmt.Sprintf("exchange %q exists as topic, not %s: the queue gets the events its binding keys match", name, want),
				"binding_keys", keys)
		default:
			c.log.Warn(fmt.Sprintf("exchange %q exists with other settings than a durable %s exchange (another type, or not durable); "+
				"using it as it is", name, want), "binding_keys", keys)
		}
	})
}

// reopen opens a channel in place of ch, which the broker closed; on error it
// returns ch, so that the caller always has a channel to close.
func reopen(conn *amqp.Connection, ch *amqp.Channel) (*amqp.Channel, error) {
	next, err := conn.Channel()
	if err != nil {
		return ch, fmt.Errorf("open channel: %w", err)
	}
	return next, nil
}

func preconditionFailed(err error) bool {
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Code == amqp.PreconditionFailed
}
