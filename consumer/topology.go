package consumer

import (
	"errors"
	"fmt"

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
// arguments fails with a PRECONDITION_FAILED error, reported with a hint.
func declare(conn *amqp.Connection, cfg Config) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	dlx, dead := DeadLetterExchange(cfg.Queue), DeadLetterQueue(cfg.Queue)
	quorum := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	steps := []struct {
		what string
		do   func() error
	}{
		{"exchange " + cfg.Exchange, func() error {
			return ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeFanout, true, false, false, false, nil)
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
			_, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, amqp.Table{
				amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
				"x-dead-letter-exchange": dlx,
			})
			return err
		}},
		{"binding " + cfg.Queue + " to " + cfg.Exchange, func() error {
			return ch.QueueBind(cfg.Queue, "", cfg.Exchange, false, nil)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return declareError(s.what, err)
		}
	}
	return nil
}

// errTopology is wrapped by declaration errors that retrying cannot fix.
var errTopology = errors.New("topology conflict")

func declareError(what string, err error) error {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) {
		switch amqpErr.Code {
		case amqp.PreconditionFailed:
			return fmt.Errorf("%w: declare %s: %s (it exists with other settings: delete it, or choose another name)",
				errTopology, what, amqpErr.Reason)
		case amqp.AccessRefused:
			return fmt.Errorf("%w: declare %s: %s (the broker user lacks configure permission)", errTopology, what, amqpErr.Reason)
		}
	}
	return fmt.Errorf("declare %s: %w", what, err)
}
