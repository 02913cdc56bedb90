package consumer

import (
	"errors"
	"fmt"
	"regexp"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadLetterExchange and DeadLetterQueue name the dead-letter topology of a
// queue: Queue's rejected messages go to the fanout exchange "<queue>.dlx",
// which routes them to the quorum queue "<queue>.dead".
func DeadLetterExchange(queue string) string { return queue + ".dlx" }

// DeadLetterQueue is the queue holding queue's rejected messages.
func DeadLetterQueue(queue string) string { return queue + ".dead" }

// declare creates, idempotently, the exchange, the dead-letter exchange and
// queue, and the quorum queue bound to the exchange. Declaring what exists
// with the same arguments is a no-op; an existing queue or exchange with other
// arguments fails with a PRECONDITION_FAILED error, reported with a hint. The
// one exception is a queue declared without x-delivery-limit (by a jobsd
// older than the argument): it is used as it is, and warnLimit is called.
//
// The exchange is declared with cfg.ExchangeType; one that exists with
// another type is used as it is (see declareExchange) and logExchange says
// so. The queue is bound with each of cfg.BindingKeys, or once with the empty
// key when the exchange is fanout (which ignores keys). Bindings are only
// ever added: a key dropped from BindingKeys stays bound until it is removed
// on the broker (rabbitmqadmin delete binding, or the management UI).
func (c *Consumer) declare(conn *amqp.Connection) error {
	cfg, warnLimit := c.cfg, c.logMissingLimit
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer func() { _ = ch.Close() }() // ch may be replaced below
	dlx, dead := DeadLetterExchange(cfg.Queue), DeadLetterQueue(cfg.Queue)
	quorum := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	var kind string // the exchange's type, once declared
	steps := []struct {
		what string
		do   func() error
	}{
		{"exchange " + cfg.Exchange, func() error {
			var err error
			if ch, kind, err = declareExchange(conn, ch, cfg.Exchange, c.kindToDeclare()); err != nil {
				return err
			}
			if kind != "" {
				c.foundKind.Store(kind)
			}
			c.logExchange(kind)
			return nil
		}},
		{"exchange " + dlx, func() error {
			return ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil)
		}},
		{"queue " + dead, func() error {
			_, err := ch.QueueDeclare(dead, true, false, false, false, quorum)
			return err
		}},
		{"binding " + dead + " to " + dlx, func() error { return ch.QueueBind(dead, "", dlx, false, nil) }},
		{"queue " + cfg.Queue, func() error {
			args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-dead-letter-exchange": dlx}
			if cfg.DeliveryLimit < 0 {
				_, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, args)
				return err
			}
			withLimit := amqp.Table{deliveryLimitArg: int64(cfg.DeliveryLimit)}
			for k, v := range args {
				withLimit[k] = v
			}
			_, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, withLimit)
			var amqpErr *amqp.Error
			if err == nil || !errors.As(err, &amqpErr) || amqpErr.Code != amqp.PreconditionFailed {
				return err
			}
			// The failed declare closed the channel. Is the queue one that
			// an older jobsd declared, without the limit?
			if ch, err = conn.Channel(); err != nil {
				return fmt.Errorf("open channel: %w", err)
			}
			if _, legacyErr := ch.QueueDeclare(cfg.Queue, true, false, false, false, args); legacyErr != nil {
				return amqpErr // other settings than ours: report the first mismatch
			}
			warnLimit()
			return nil
		}},
		{"binding " + cfg.Queue + " to " + cfg.Exchange, func() error {
			if kind == ExchangeFanout {
				return ch.QueueBind(cfg.Queue, "", cfg.Exchange, false, nil)
			}
			for _, key := range cfg.BindingKeys {
				if err := ch.QueueBind(cfg.Queue, key, cfg.Exchange, false, nil); err != nil {
					return fmt.Errorf("key %q: %w", key, err)
				}
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return declareError(s.what, err)
		}
	}
	return nil
}

// kindToDeclare is the type to declare the exchange with: the one it was
// found to have on an earlier connection, else the configured one.
func (c *Consumer) kindToDeclare() string {
	if k, ok := c.foundKind.Load().(string); ok {
		return k
	}
	return c.cfg.ExchangeType
}

// deliveryLimitArg is the quorum queue argument that dead-letters a message
// returned to the queue this many times (RabbitMQ 4 defaults it to 20).
const deliveryLimitArg = "x-delivery-limit"

// logMissingLimit logs, once per Consumer, that the queue exists without
// x-delivery-limit and how to set it: queue arguments cannot change, policies
// can.
func (c *Consumer) logMissingLimit() {
	c.limitWarning.Do(func() {
		q := c.cfg.Queue
		c.log.Warn("the queue exists without x-delivery-limit (declared by an older jobsd); using it as it is. "+
			"RabbitMQ 3.x then redelivers returned messages without limit, 4.x dead-letters them after its default 20. "+
			"To set the limit, apply a policy (a queue follows one policy only: merge this key into yours if one applies)",
			"delivery_limit", c.cfg.DeliveryLimit,
			"command", fmt.Sprintf(`rabbitmqctl set_policy --apply-to queues 'jobsd-delivery-limit-%s' '^%s$' '{"delivery-limit":%d}'`,
				q, regexp.QuoteMeta(q), c.cfg.DeliveryLimit))
	})
}

// errTopology is wrapped by declaration errors that retrying cannot fix.
var errTopology = errors.New("topology conflict")

func declareError(what string, err error) error {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) {
		switch amqpErr.Code {
		case amqp.PreconditionFailed:
			return fmt.Errorf("%w: declare %s: %s (it exists with other settings: delete it, choose another name, "+
				"or for x-delivery-limit pass the existing value with --delivery-limit)",
				errTopology, what, amqpErr.Reason)
		case amqp.AccessRefused:
			return fmt.Errorf("%w: declare %s: %s (the broker user lacks configure permission)", errTopology, what, amqpErr.Reason)
		}
	}
	return fmt.Errorf("declare %s: %w", what, err)
}
