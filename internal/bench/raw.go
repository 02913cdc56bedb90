package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/relay"
)

// Throughput is one side of a throughput measurement.
type Throughput struct {
	Messages int     `json:"messages"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"msgs_per_sec"`
}

func throughput(n int, elapsed time.Duration) Throughput {
	return Throughput{Messages: n, Seconds: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds()}
}

// payload returns a JSON object {"seq":seq,"pad":"xx..."} of about size bytes.
func payload(seq, size int) []byte {
	head := `{"seq":` + strconv.Itoa(seq) + `,"pad":"`
	pad := max(size-len(head)-2, 0)
	return []byte(head + strings.Repeat("x", pad) + `"}`)
}

// RawPublish is the baseline of the relay: a raw amqp091 publisher with
// pipelined publisher confirms (at most window unconfirmed) publishes n
// persistent messages of size bytes to a fresh durable topic exchange bound
// to a quorum queue, while a raw consumer drains the queue. The clock runs
// from the first publish until every message is confirmed and received.
func RawPublish(ctx context.Context, amqpURL string, n, window, size int) (Throughput, error) {
	if n < 1 || window < 1 || size < 1 {
		return Throughput{}, fmt.Errorf("bench: n, window and size must be positive, got %d, %d, %d", n, window, size)
	}
	top, err := declare(amqpURL, false)
	if err != nil {
		return Throughput{}, err
	}
	defer top.delete()
	col, err := collect(amqpURL, top.name, nil)
	if err != nil {
		return Throughput{}, err
	}
	defer col.close()
	progressf(ctx, "raw publish: %d messages, window %d", n, window)
	start := time.Now()
	if err := Publish(ctx, amqpURL, top.name, n, window, size); err != nil {
		return Throughput{}, err
	}
	if err := col.await(ctx, int64(n), "raw publish"); err != nil {
		return Throughput{}, err
	}
	return throughput(n, time.Since(start)), nil
}

// Publish publishes n relay-like messages (persistent, JSON body of size
// bytes, message ids UUIDs unique to this call, type user.signed_up, the relay's
// key header) to exchange with pipelined publisher confirms: at most window
// messages wait for their confirm. It returns once all are confirmed, or the
// first nack.
func Publish(ctx context.Context, amqpURL, exchange string, n, window, size int) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return fmt.Errorf("cannot reach the broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		return fmt.Errorf("publisher channel: %w", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	body := payload(0, size)
	run := newRunID()
	outstanding := 0
	await := func() error {
		select {
		case c, ok := <-confirms:
			if !ok {
				return errors.New("publish: channel closed while waiting for confirms")
			}
			if !c.Ack {
				return fmt.Errorf("publish: broker nacked message %d", c.DeliveryTag)
			}
			outstanding--
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := range n {
		for outstanding >= window {
			if err := await(); err != nil {
				return err
			}
		}
		err := ch.PublishWithContext(ctx, exchange, "", false, false, amqp.Publishing{
			Headers:      amqp.Table{relay.KeyHeader: "bench-" + strconv.Itoa(i)},
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    fmt.Sprintf("%s%012x", run, i), // a UUID, as the relay's ids and the consumer require
			Timestamp:    time.Now(),
			Type:         topic,
			Body:         body,
		})
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		outstanding++
	}
	for outstanding > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}
