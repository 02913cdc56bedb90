package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/relay"
	jsql "github.com/jobsd/jobsd/sql"
)

var (
	fillOutboxSQL   = jsql.Statement("bench_outbox_fill")
	vacuumOutboxSQL = jsql.Statement("bench_outbox_vacuum")
)

// RelayResult compares the relay with the raw publisher.
type RelayResult struct {
	Raw     Throughput   `json:"raw"` // the faster of RawRuns
	RawRuns []Throughput `json:"raw_runs"`
	// RawNoConsumer is raw publishing to a queue nobody consumes: the
	// broker's own publishing limit, which a consumer on the same cores lowers.
	RawNoConsumer Throughput `json:"raw_no_consumer"`
	Relay         Throughput `json:"relay"`
	RelayHotKeys  Throughput `json:"relay_100_keys"`
	Ratio         float64    `json:"relay_over_raw"`
	RatioHotKeys  float64    `json:"relay_100_keys_over_raw"`
}

// HotKeys is the number of keys of Relay's second relay measurement.
const HotKeys = 100

// Relay runs RawPublish (the baseline, window WindowDefault, SizeDefault
// bytes), RelayDrain with a key per row and with HotKeys keys, and RawPublish
// again, n messages each. The baseline is the faster raw run: on a noisy
// machine that makes the ratios conservative.
func Relay(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n int) (RelayResult, error) {
	var res RelayResult
	raw := func() error {
		r, err := RawPublish(ctx, amqpURL, n, WindowDefault, SizeDefault)
		res.RawRuns = append(res.RawRuns, r)
		if r.Rate > res.Raw.Rate {
			res.Raw = r
		}
		return err
	}
	var err error
	if err = raw(); err != nil {
		return res, err
	}
	if res.Relay, err = RelayDrain(ctx, pool, amqpURL, n, 0); err != nil {
		return res, err
	}
	if res.RelayHotKeys, err = RelayDrain(ctx, pool, amqpURL, n, HotKeys); err != nil {
		return res, err
	}
	if err = raw(); err != nil {
		return res, err
	}
	if res.RawNoConsumer, err = RawPublishNoConsumer(ctx, amqpURL, n); err != nil {
		return res, err
	}
	res.Ratio = res.Relay.Rate / res.Raw.Rate
	res.RatioHotKeys = res.RelayHotKeys.Rate / res.Raw.Rate
	return res, nil
}

// RelayDrain inserts n pending outbox rows of SizeDefault-byte payloads (one
// INSERT ... SELECT generate_series, then VACUUM ANALYZE, outside the timing)
// and times a relay.Relay with the default batch and window publishing them
// to a fresh durable topic exchange bound to a quorum queue, from Run until a
// raw consumer on the queue received all n. keys 0 gives each row its own key;
// otherwise rows share that many keys (the relay keeps each key's order).
// Published rows are kept (relay.RetentionKeep); the pool's outbox_event
// should hold no other pending rows.
func RelayDrain(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n, keys int) (Throughput, error) {
	return RelayDrainOrder(ctx, pool, amqpURL, n, keys, false)
}

// RelayDrainOrder is RelayDrain with relay.Config.StrictOrder set to strict
// (at most one message of a key in flight).
func RelayDrainOrder(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n, keys int, strict bool) (Throughput, error) {
	if n < 1 || keys < 0 {
		return Throughput{}, fmt.Errorf("bench: n must be positive and keys not negative, got %d, %d", n, keys)
	}
	top, err := declare(amqpURL, false)
	if err != nil {
		return Throughput{}, err
	}
	defer top.delete()
	if err := fillOutbox(ctx, pool, n, keys); err != nil {
		return Throughput{}, err
	}
	col, err := collect(amqpURL, top.name, nil)
	if err != nil {
		return Throughput{}, err
	}
	defer col.close()
	r, err := relay.New(pool, amqpURL, relay.Config{
		Exchange:    top.name,
		Retention:   relay.RetentionKeep,
		StrictOrder: strict,
		Logger:      logger(ctx),
	})
	if err != nil {
		return Throughput{}, err
	}
	progressf(ctx, "relay: draining %d rows (%s%s)", n, keysText(keys), map[bool]string{true: ", strict order"}[strict])
	start := time.Now()
	run := goRun(ctx, r.Run)
	waitErr := col.await(ctx, int64(n), "relay")
	elapsed := time.Since(start)
	if err := run.stop(); err != nil {
		return Throughput{}, err
	}
	if waitErr != nil {
		return Throughput{}, waitErr
	}
	return throughput(n, elapsed), nil
}

func keysText(keys int) string {
	if keys == 0 {
		return "one key per row"
	}
	return fmt.Sprintf("%d keys", keys)
}

// fillOutbox inserts n pending rows of SizeDefault-byte payloads over keys
// keys (0: a key per row) in one statement, then VACUUM ANALYZE, so that a
// measurement starts from a table in its steady state.
func fillOutbox(ctx context.Context, pool *pgxpool.Pool, n, keys int) error {
	progressf(ctx, "relay: inserting %d outbox rows", n)
	if _, err := pool.Exec(ctx, fillOutboxSQL, n, keys, topic, string(payload(0, SizeDefault))); err != nil {
		return fmt.Errorf("insert outbox rows: %w", err)
	}
	if _, err := pool.Exec(ctx, vacuumOutboxSQL); err != nil {
		return fmt.Errorf("vacuum outbox_event: %w", err)
	}
	return nil
}
