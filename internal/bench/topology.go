package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/consumer"
)

// Message shape of every measurement: 200-byte persistent JSON messages.
const (
	WindowDefault = 500 // publisher confirms in flight for RawPublish
	SizeDefault   = 200 // message body size in bytes
	topic         = "user.signed_up"
)

// waitTimeout bounds every wait for messages or jobs; reaching it means
// something is broken (a lost message, a stuck worker), not slow.
const waitTimeout = 2 * time.Minute

// topology is one measurement's exchange and queue, both named name.
type topology struct {
	url  string
	name string
}

// newName returns a fresh jobsd.bench.<random> name.
func newName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "jobsd.bench." + hex.EncodeToString(b)
}

// newRunID returns the first 24 characters of a UUID (8-4-4-4-), random;
// appending 12 hex digits of a sequence number completes it.
func newRunID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant
	return fmt.Sprintf("%x-%x-%x-%x-", b[0:4], b[4:6], b[6:8], b[8:10])
}

// declare creates a durable topic exchange (the relay's and the consumer's
// default type) and, unless noQueue, a durable quorum queue of the same name
// bound to it with "#" (every topic).
func declare(amqpURL string, noQueue bool) (*topology, error) {
	t := &topology{url: amqpURL, name: newName()}
	err := t.channel(func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(t.name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return err
		}
		if noQueue {
			return nil
		}
		if _, err := ch.QueueDeclare(t.name, true, false, false, false,
			amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
			return err
		}
		return ch.QueueBind(t.name, consumer.BindingKeyAll, t.name, false, nil)
	})
	if err != nil {
		t.delete()
		return nil, fmt.Errorf("declare %s: %w", t.name, err)
	}
	return t, nil
}

// delete removes the exchange, the queue and a consumer.Consumer's
// dead-letter exchange and queue; missing ones are fine.
func (t *topology) delete() {
	for _, q := range []string{t.name, consumer.DeadLetterQueue(t.name)} {
		_ = t.channel(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
	}
	for _, x := range []string{t.name, consumer.DeadLetterExchange(t.name)} {
		_ = t.channel(func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) })
	}
}

// channel runs f on a fresh connection and channel (an AMQP error closes the
// channel, so each step gets its own).
func (t *topology) channel(f func(*amqp.Channel) error) error {
	conn, err := amqp.Dial(t.url)
	if err != nil {
		return fmt.Errorf("cannot reach the broker: %w", err) // amqp091 errors carry no password
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return f(ch)
}

// waitFor polls cond every interval until it holds, ctx ends or waitTimeout
// passes; what describes the progress for the error.
func waitFor(ctx context.Context, interval time.Duration, cond func() (bool, error), what func() string) error {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what(), ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s after %v (something is lost or stuck)", what(), waitTimeout)
		case <-tick.C:
		}
	}
}

// stopper is a goroutine's cancel and its result.
type stopper struct {
	cancel context.CancelFunc
	done   chan error
}

// goRun runs f in a goroutine until stop.
func goRun(ctx context.Context, f func(context.Context) error) *stopper {
	ctx, cancel := context.WithCancel(ctx)
	s := &stopper{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- f(ctx) }()
	return s
}

// stop cancels the goroutine and returns its error.
func (s *stopper) stop() error {
	s.cancel()
	return <-s.done
}
