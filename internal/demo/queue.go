package demo

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/relay"
)

// resetQueue prepares the demo's queue before a run: it unbinds the queue
// from the shared exchange relay.ExchangeDefault (earlier versions of the demo
// bound it there, so every other publisher's events piled up in it between
// runs) unless the demo publishes there itself, then purges what the queue
// holds. A queue that does not exist yet is not an error. It returns how many
// messages were purged.
func resetQueue(amqpURL, queue, exchange string) (int, error) {
	var conn *amqp.Connection
	var err error
	for _, u := range relay.SplitURLs(amqpURL) { // the first broker of a list that answers
		var dialed *amqp.Connection
		if dialed, err = amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)}); err == nil {
			conn = dialed
			break
		}
	}
	if conn == nil {
		return 0, fmt.Errorf("cannot reach RabbitMQ at %s: %v (is it running? check --amqp-url / AMQP_URL)",
			relay.RedactURL(amqpURL), err)
	}
	defer conn.Close()
	// Each step on its own channel: a 404 (no such queue or exchange) closes
	// the channel it happened on.
	step := func(f func(ch *amqp.Channel) error) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		err = f(ch)
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
			return nil
		}
		if err == nil {
			_ = ch.Close()
		}
		return err
	}
	if exchange != relay.ExchangeDefault {
		if err := step(func(ch *amqp.Channel) error {
			return ch.QueueUnbind(queue, "", relay.ExchangeDefault, nil)
		}); err != nil {
			return 0, fmt.Errorf("unbind queue %s from exchange %s: %w", queue, relay.ExchangeDefault, err)
		}
	}
	var purged int
	if err := step(func(ch *amqp.Channel) (err error) {
		purged, err = ch.QueuePurge(queue, false)
		return err
	}); err != nil {
		return 0, fmt.Errorf("purge queue %s: %w", queue, err)
	}
	return purged, nil
}
