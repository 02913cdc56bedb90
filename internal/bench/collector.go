package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// collectorPrefetch is the raw consumer's prefetch; it acks every
// collectorAck messages with one multiple-ack.
const (
	collectorPrefetch = 1000
	collectorAck      = 100
)

// collector is a raw amqp091 consumer on a queue that counts the messages
// and calls onMessage with each body and its receive time.
type collector struct {
	conn     *amqp.Connection
	received atomic.Int64
	done     chan struct{}
}

func collect(amqpURL, queue string, onMessage func(body []byte, at time.Time)) (*collector, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the broker: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Qos(collectorPrefetch, 0, false)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(queue, "", false, false, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	c := &collector{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for d := range deliveries {
			if onMessage != nil {
				onMessage(d.Body, time.Now())
			}
			if n := c.received.Add(1); n%collectorAck == 0 {
				_ = d.Ack(true)
			}
		}
	}()
	return c, nil
}

// await waits until n messages arrived.
func (c *collector) await(ctx context.Context, n int64, what string) error {
	next := time.Now().Add(time.Second)
	return waitFor(ctx, time.Millisecond, func() (bool, error) {
		got := c.received.Load()
		if time.Now().After(next) {
			progressf(ctx, "%s: %d/%d received", what, got, n)
			next = time.Now().Add(time.Second)
		}
		return got >= n, nil
	}, func() string { return fmt.Sprintf("%s: %d of %d messages received", what, c.received.Load(), n) })
}

func (c *collector) close() {
	_ = c.conn.Close()
	<-c.done
}
