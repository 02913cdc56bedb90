package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/bench"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// BenchmarkConsumer measures, in the same run, how fast N messages waiting in
// a quorum queue are drained by (a) a raw amqp091 consumer that only acks each
// message and (b) a Consumer that records and counts each of them in Postgres
// exactly once. The messages are published once to a fanout exchange bound to
// both queues, before either clock starts; each clock runs from dialling the
// broker until the last message is settled.
//
//	go test -run '^$' -bench BenchmarkConsumer -benchtime 1x ./consumer/
//
// JOBSD_BENCH_MESSAGES sets N (default 20000). Sub-benchmarks vary the
// prefetch, batch size and concurrency; "defaults" is the Config's defaults.
func BenchmarkConsumer(b *testing.B) {
	n := 20000
	if s := os.Getenv("JOBSD_BENCH_MESSAGES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("JOBSD_BENCH_MESSAGES=%q is not a positive number", s)
		}
		n = v
	}
	for _, tc := range []struct {
		name                         string
		prefetch, batch, concurrency int
	}{
		{name: "defaults"},
		{name: "batch=1", batch: 1},
		{name: "prefetch=50", prefetch: 50},
		{name: "prefetch=500", prefetch: 500, batch: 250},
		{name: "concurrency=1", concurrency: 1},
		{name: "concurrency=4", concurrency: 4},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := consumer.Config{Prefetch: tc.prefetch, BatchSize: tc.batch, Concurrency: tc.concurrency}
			var raw, cons time.Duration
			for range b.N {
				r, c := benchOnce(b, n, cfg)
				raw, cons = raw+r, cons+c
			}
			rawRate := float64(n*b.N) / raw.Seconds()
			consRate := float64(n*b.N) / cons.Seconds()
			b.ReportMetric(rawRate, "raw_msgs/s")
			b.ReportMetric(consRate, "consumer_msgs/s")
			b.ReportMetric(consRate/rawRate, "ratio")
		})
	}
}

// benchOnce publishes n messages into a raw queue and the consumer's queue,
// then times the drain of each.
func benchOnce(b *testing.B, n int, cfg consumer.Config) (raw, cons time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	db, broker := testdb.New(b), testbroker.New(b)
	cfg = cfg.WithDefaults()
	cfg.Exchange, cfg.Queue = broker.Name("bench"), broker.Name("bench")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	rawQueue := broker.Name("raw")

	// Declare the consumer's topology with a first, empty run, and the raw
	// queue (a quorum queue too) on the same exchange.
	c, err := consumer.New(db.Pool, broker.URL, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-c.Ready()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	ch := broker.Channel()
	if _, err := ch.QueueDeclare(rawQueue, true, false, false, false,
		amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(rawQueue, "", cfg.Exchange, false, nil); err != nil {
		b.Fatal(err)
	}
	benchPublish(b, broker, cfg.Exchange, n)

	raw = rawDrain(b, broker.URL, rawQueue, cfg.Prefetch, n)
	cons = consumerDrain(b, db, broker, cfg, n)
	return raw, cons
}

// benchPublish publishes n relay-like messages (200-byte JSON bodies) with
// pipelined confirms.
func benchPublish(b *testing.B, broker *testbroker.Broker, exchange string, n int) {
	if err := bench.Publish(context.Background(), broker.URL, exchange, n, 1000, bench.SizeDefault); err != nil {
		b.Fatal(err)
	}
}

// rawDrain consumes n messages from queue, acking each, and returns the time
// from dialling to the last ack.
func rawDrain(b *testing.B, url, queue string, prefetch, n int) time.Duration {
	start := time.Now()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		d, ok := <-deliveries
		if !ok {
			b.Fatal("raw consumer: deliveries closed")
		}
		if err := d.Ack(false); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// Wait for the broker to have processed the acks before the next phase.
	for {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if q.Messages == 0 {
			return elapsed
		}
		time.Sleep(time.Millisecond)
	}
}

// consumerDrain runs a Consumer until it processed n messages and returns the
// time from Run to the last commit, then checks the counts are exact.
func consumerDrain(b *testing.B, db *testdb.DB, broker *testbroker.Broker, cfg consumer.Config, n int) time.Duration {
	c, err := consumer.New(db.Pool, broker.URL, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	for c.Stats().Processed < uint64(n) {
		time.Sleep(500 * time.Microsecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	var sum int64
	if err := db.Pool.QueryRow(context.Background(), "SELECT coalesce(sum(n), 0) FROM analytics_counts").Scan(&sum); err != nil {
		b.Fatal(err)
	}
	if sum != int64(n) || c.Stats().Processed != uint64(n) {
		b.Fatalf("counted %d, processed %d, want %d", sum, c.Stats().Processed, n)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "consumer %+v: %v\n", c.Stats(), elapsed)
	}
	return elapsed
}
