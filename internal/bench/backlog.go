package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/relay"
	jsql "github.com/jobsd/jobsd/sql"
)

var drainedSQL = jsql.Statement("bench_outbox_drained")

// BacklogKeys is the number of keys of the backlog and scale measurements.
const BacklogKeys = 1000

// BacklogResult compares the relay's drain rate at two backlog sizes with
// the broker's own publishing speed, all without a consumer.
type BacklogResult struct {
	RawSmall Throughput `json:"raw_publish_no_consumer_small"`
	RawLarge Throughput `json:"raw_publish_no_consumer_large"`
	Small    Throughput `json:"relay_small"`
	Large    Throughput `json:"relay_large"`
	// LargeOverSmall is the large backlog's rate over the small one's: 1
	// when the cost per event does not grow with the backlog.
	LargeOverSmall float64 `json:"large_over_small"`
	SmallOverRaw   float64 `json:"small_over_raw"` // each over raw publishing of as many messages
	LargeOverRaw   float64 `json:"large_over_raw"`
}

// Backlog runs RawPublishNoConsumer and RelayDrainNoConsumer (pre-inserted
// rows over BacklogKeys keys) at a small and a large size. A queue nobody
// consumes gets slower as it grows, so each relay drain is compared with raw
// publishing of as many messages.
func Backlog(ctx context.Context, pool *pgxpool.Pool, amqpURL string, small, large int) (BacklogResult, error) {
	var res BacklogResult
	var err error
	if res.RawSmall, err = RawPublishNoConsumer(ctx, amqpURL, small); err != nil {
		return res, err
	}
	if res.Small, err = RelayDrainNoConsumer(ctx, pool, amqpURL, small, BacklogKeys, 1); err != nil {
		return res, err
	}
	if res.RawLarge, err = RawPublishNoConsumer(ctx, amqpURL, large); err != nil {
		return res, err
	}
	if res.Large, err = RelayDrainNoConsumer(ctx, pool, amqpURL, large, BacklogKeys, 1); err != nil {
		return res, err
	}
	res.LargeOverSmall = res.Large.Rate / res.Small.Rate
	res.SmallOverRaw = res.Small.Rate / res.RawSmall.Rate
	res.LargeOverRaw = res.Large.Rate / res.RawLarge.Rate
	return res, nil
}

// ScaleResult is the drain rate of 1, 2 and 4 relays sharing one database,
// with a key per row (the signup workload) and with BacklogKeys hot keys.
type ScaleResult struct {
	Raw        Throughput         `json:"raw_publish_no_consumer"`
	UniqueKeys map[int]Throughput `json:"unique_keys"`
	HotKeys    map[int]Throughput `json:"hot_keys"`
}

// Scale drains n rows with 1, 2 and 4 relays at once (in this process, each
// with its own connections), without a consumer: first with a key per row,
// then over BacklogKeys keys.
func Scale(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n int) (ScaleResult, error) {
	res := ScaleResult{UniqueKeys: map[int]Throughput{}, HotKeys: map[int]Throughput{}}
	var err error
	if res.Raw, err = RawPublishNoConsumer(ctx, amqpURL, n); err != nil {
		return res, err
	}
	for _, keys := range []int{0, BacklogKeys} {
		out := res.UniqueKeys
		if keys > 0 {
			out = res.HotKeys
		}
		for _, relays := range []int{1, 2, 4} {
			t, err := RelayDrainNoConsumer(ctx, pool, amqpURL, n, keys, relays)
			if err != nil {
				return res, err
			}
			out[relays] = t
		}
	}
	return res, nil
}

// RawPublishNoConsumer publishes n messages as RawPublish does, to a quorum
// queue nobody consumes: the broker's own limit for what the relay does. The
// clock runs until every message is confirmed.
func RawPublishNoConsumer(ctx context.Context, amqpURL string, n int) (Throughput, error) {
	top, err := declare(amqpURL, false)
	if err != nil {
		return Throughput{}, err
	}
	defer top.delete()
	progressf(ctx, "raw publish, no consumer: %d messages, window %d", n, WindowDefault)
	start := time.Now()
	if err := Publish(ctx, amqpURL, top.name, n, WindowDefault, SizeDefault); err != nil {
		return Throughput{}, err
	}
	return throughput(n, time.Since(start)), nil
}

// RelayDrainNoConsumer inserts n pending rows over keys keys (outside the
// timing) and times relays relays, started at once, until no row is pending:
// the broker confirmed every message and the relays marked it. The queue
// (quorum, as RawPublishNoConsumer's) has no consumer.
func RelayDrainNoConsumer(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n, keys, relays int) (Throughput, error) {
	if n < 1 || keys < 0 || relays < 1 {
		return Throughput{}, fmt.Errorf("bench: n and relays must be positive and keys not negative, got %d, %d, %d", n, keys, relays)
	}
	top, err := declare(amqpURL, false)
	if err != nil {
		return Throughput{}, err
	}
	defer top.delete()
	if err := fillOutbox(ctx, pool, n, keys); err != nil {
		return Throughput{}, err
	}
	var runs []*stopper
	defer func() {
		for _, r := range runs {
			_ = r.stop()
		}
	}()
	progressf(ctx, "relay: %d relay(s) draining %d rows (%s), no consumer", relays, n, keysText(keys))
	start := time.Now()
	for range relays {
		r, err := relay.New(pool, amqpURL, relay.Config{
			Exchange:  top.name,
			Retention: relay.RetentionKeep,
			Logger:    logger(ctx),
		})
		if err != nil {
			return Throughput{}, err
		}
		runs = append(runs, goRun(ctx, r.Run))
	}
	next := time.Now().Add(time.Second)
	err = waitFor(ctx, 5*time.Millisecond, func() (bool, error) {
		var drained bool
		err := pool.QueryRow(ctx, drainedSQL).Scan(&drained)
		if time.Now().After(next) {
			progressf(ctx, "relay: draining, %v", time.Since(start).Round(time.Second))
			next = time.Now().Add(time.Second)
		}
		return drained, err
	}, func() string { return fmt.Sprintf("relay: %d rows not drained", n) })
	elapsed := time.Since(start)
	if err != nil {
		return Throughput{}, err
	}
	for _, r := range runs {
		if err := r.stop(); err != nil {
			return Throughput{}, err
		}
	}
	runs = nil
	return throughput(n, elapsed), nil
}
