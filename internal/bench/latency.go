package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/relay"
)

// pacedWriters is how many goroutines share a send schedule, so that a slow
// commit does not delay the next event's start.
const pacedWriters = 8

// sendPaced calls send(seq) for seq 0 to total-1, seq at start + seq/rate,
// from pacedWriters goroutines. It returns how long sending took and the
// first error (send's, wrapped with what, or ctx's).
func sendPaced(ctx context.Context, what string, total int, rate float64, send func(seq int) error) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pacedWriters)
	for w := range pacedWriters {
		wg.Go(func() {
			for seq := w; seq < total; seq += pacedWriters {
				due := start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
				if err := send(seq); err != nil {
					errs <- fmt.Errorf("%s: send event %d: %w", what, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// LatencyStats is the latency distribution of one path, in milliseconds.
type LatencyStats struct {
	Events int     `json:"events"`
	Rate   float64 `json:"events_per_sec"` // achieved send rate
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// LatencyResult compares the relay's commit->consumer latency with the
// broker's publish->consumer latency at the same rate.
type LatencyResult struct {
	Relay    LatencyStats `json:"relay"`
	Broker   LatencyStats `json:"broker"`
	P50Ratio float64      `json:"p50_relay_over_broker"`
	P99Ratio float64      `json:"p99_relay_over_broker"`
}

// Latency runs BrokerLatency (the baseline), then RelayLatency.
func Latency(ctx context.Context, pool *pgxpool.Pool, amqpURL string, rate float64, d time.Duration) (LatencyResult, error) {
	broker, err := BrokerLatency(ctx, amqpURL, rate, d)
	if err != nil {
		return LatencyResult{}, err
	}
	rel, err := RelayLatency(ctx, pool, amqpURL, rate, d)
	if err != nil {
		return LatencyResult{}, err
	}
	return LatencyResult{Relay: rel, Broker: broker, P50Ratio: rel.P50 / broker.P50, P99Ratio: rel.P99 / broker.P99}, nil
}

// RelayLatency writes rate events per second for d, each with outbox.Write
// in its own transaction, while a relay.Relay (default config) publishes them
// to a fresh topic exchange and quorum queue and a raw consumer receives
// them. An event's latency runs from the moment its commit returned to the
// writer until the consumer received it (the payload carries the event's
// sequence number; the writer notes the commit time under that number).
func RelayLatency(ctx context.Context, pool *pgxpool.Pool, amqpURL string, rate float64, d time.Duration) (LatencyStats, error) {
	return measureLatency(ctx, amqpURL, rate, d, "relay latency", func(top *topology) (func(int) error, func() error, error) {
		r, err := relay.New(pool, amqpURL, relay.Config{Exchange: top.name, Retention: relay.RetentionKeep, Logger: logger(ctx)})
		if err != nil {
			return nil, nil, err
		}
		run := goRun(ctx, r.Run)
		err = waitFor(ctx, time.Millisecond, func() (bool, error) { return r.BrokerConnected(), nil },
			func() string { return "relay latency: the relay did not connect to the broker" })
		if err != nil {
			_ = run.stop()
			return nil, nil, err
		}
		send := func(seq int) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return outbox.Write(ctx, tx, outbox.Event{
					Topic: topic, Key: "bench-" + strconv.Itoa(seq), Payload: json.RawMessage(payload(seq, SizeDefault)),
				})
			})
		}
		return send, run.stop, nil
	})
}

// BrokerLatency is RelayLatency's baseline: a raw amqp091 publisher with
// confirms (not awaited one by one) publishes rate messages per second for d
// to a fresh topic exchange and quorum queue; latency runs from the return
// of the publish call until a raw consumer received the message.
func BrokerLatency(ctx context.Context, amqpURL string, rate float64, d time.Duration) (LatencyStats, error) {
	return measureLatency(ctx, amqpURL, rate, d, "broker latency", func(top *topology) (func(int) error, func() error, error) {
		conn, err := amqp.Dial(amqpURL)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot reach the broker: %w", err)
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("publisher channel: %w", err)
		}
		var mu sync.Mutex
		send := func(seq int) error {
			mu.Lock()
			defer mu.Unlock()
			_, err := ch.PublishWithDeferredConfirmWithContext(ctx, top.name, "", false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: payload(seq, SizeDefault),
				MessageId: strconv.Itoa(seq), Type: topic, Timestamp: time.Now(),
				Headers: amqp.Table{relay.KeyHeader: "bench-" + strconv.Itoa(seq)},
			})
			return err
		}
		return send, conn.Close, nil
	})
}

// measureLatency declares a topology, starts a receive-time collector, lets
// setup build the sender, sends rate events per second for d on a shared
// schedule (event seq is due at start + seq/rate; a writer that falls behind
// sends at once) and waits for every event to arrive.
func measureLatency(ctx context.Context, amqpURL string, rate float64, d time.Duration, what string,
	setup func(*topology) (send func(seq int) error, stop func() error, err error),
) (LatencyStats, error) {
	total := int(rate * d.Seconds())
	if total < 1 {
		return LatencyStats{}, fmt.Errorf("bench: rate %v over %v sends no event", rate, d)
	}
	top, err := declare(amqpURL, false)
	if err != nil {
		return LatencyStats{}, err
	}
	defer top.delete()
	sent := make([]time.Time, total)
	received := make([]time.Time, total)
	var mu sync.Mutex
	col, err := collect(amqpURL, top.name, func(body []byte, at time.Time) {
		var p struct{ Seq int }
		if json.Unmarshal(body, &p) == nil && p.Seq >= 0 && p.Seq < total {
			mu.Lock()
			received[p.Seq] = at
			mu.Unlock()
		}
	})
	if err != nil {
		return LatencyStats{}, err
	}
	defer col.close()
	send, stop, err := setup(top)
	if err != nil {
		return LatencyStats{}, err
	}
	defer func() { _ = stop() }()

	progressf(ctx, "%s: %d events at %.0f/s for %v", what, total, rate, d)
	writeTime, err := sendPaced(ctx, what, total, rate, func(seq int) error {
		if err := send(seq); err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		sent[seq] = now
		mu.Unlock()
		return nil
	})
	if err != nil {
		return LatencyStats{}, err
	}
	if err := col.await(ctx, int64(total), what); err != nil {
		return LatencyStats{}, err
	}
	if err := stop(); err != nil {
		return LatencyStats{}, err
	}
	stop = func() error { return nil }

	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, total)
	for i := range total {
		if received[i].IsZero() {
			return LatencyStats{}, fmt.Errorf("%s: event %d never arrived (received a duplicate instead)", what, i)
		}
		lat = append(lat, received[i].Sub(sent[i]))
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return ms(lat[int(q*float64(len(lat)-1))]) }
	return LatencyStats{
		Events: total, Rate: float64(total) / writeTime.Seconds(),
		P50: p(0.50), P90: p(0.90), P99: p(0.99), Max: ms(lat[len(lat)-1]),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
