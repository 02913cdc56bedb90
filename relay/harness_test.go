package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait of the suite; the conditions are signalled,
// this only keeps a broken relay from hanging the test.
const waitTimeout = 60 * time.Second

// harness is one test's database, broker names and raw AMQP consumer.
type harness struct {
	t        testing.TB
	db       *testdb.DB
	broker   *testbroker.Broker
	exchange string
	queue    string
	got      *received
}

type harnessOpts struct {
	queueArgs amqp.Table // arguments of the test queue (default: classic queue)
	noQueue   bool       // declare the exchange only, no queue bound
}

func setup(t testing.TB, opts harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, db: testdb.New(t), broker: testbroker.New(t), got: newReceived()}
	h.exchange = h.broker.Name("relay")
	h.queue = h.exchange
	ch := h.broker.Channel()
	require.NoError(t, ch.ExchangeDeclare(h.exchange, amqp.ExchangeFanout, true, false, false, false, nil))
	if opts.noQueue {
		return h
	}
	_, err := ch.QueueDeclare(h.queue, true, false, false, false, opts.queueArgs)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(h.queue, "", h.exchange, false, nil))
	h.consume(h.queue)
	return h
}

// consume reads queue with a raw amqp091 consumer into h.got until the test ends.
func (h *harness) consume(queue string) {
	h.t.Helper()
	h.consumeInto(queue, h.got)
}

// consumeInto reads queue with a raw amqp091 consumer into got until the test ends.
func (h *harness) consumeInto(queue string, got *received) {
	h.t.Helper()
	conn, err := amqp.Dial(h.broker.URL)
	require.NoError(h.t, err)
	ch, err := conn.Channel()
	require.NoError(h.t, err)
	require.NoError(h.t, ch.Qos(500, 0, false))
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	require.NoError(h.t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			got.add(d)
			_ = d.Ack(false)
		}
	}()
	h.t.Cleanup(func() { _ = conn.Close(); <-done })
}

// config returns a relay config for the test's exchange with fast timings.
func (h *harness) config() Config {
	return Config{
		Exchange:     h.exchange,
		ExchangeType: ExchangeFanout, // as setup declares it
		PollInterval: 100 * time.Millisecond,
		Lease:        5 * time.Second,
		RetryBackoff: 20 * time.Millisecond,
		Retention:    RetentionKeep,
		Logger:       testLogger(),
	}
}

// start runs a relay until the test ends; the cleanup checks that Run
// returned nil.
func (h *harness) start(url string, cfg Config) *Relay {
	h.t.Helper()
	r, err := New(h.db.Pool, url, cfg)
	require.NoError(h.t, err)
	h.run(r)
	return r
}

func (h *harness) run(r *Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				err = fmt.Errorf("Run did not return %v after cancel", waitTimeout)
			}
		})
		return err
	}
	h.t.Cleanup(func() { require.NoError(h.t, stop()) })
	return stop
}

func testLogger() *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// seqPayload is the payload of the ordering tests.
type seqPayload struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

// write commits events in one transaction with outbox.Write.
func write(t testing.TB, pool *pgxpool.Pool, events ...outbox.Event) []int64 {
	t.Helper()
	var ids []int64
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		ids, err = outbox.WriteReturningIDs(context.Background(), tx, events...)
		return err
	})
	require.NoError(t, err)
	return ids
}

// writeMixedKeys writes keys x perKey events (payload seq 0.. per key) with
// writers goroutines, each owning some keys, in small transactions of 1 to 3
// events that mix keys, so that relays claim rows of the same keys.
func writeMixedKeys(t testing.TB, pool *pgxpool.Pool, keys, perKey, writers int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := map[string]int{}
			var mine []string
			for k := w; k < keys; k += writers {
				mine = append(mine, fmt.Sprintf("key-%02d", k))
			}
			for remaining := len(mine) * perKey; remaining > 0; {
				var events []outbox.Event
				for j := 0; j < 1+rand.IntN(3) && remaining > 0; j++ {
					key := mine[rand.IntN(len(mine))]
					if next[key] == perKey {
						continue
					}
					events = append(events, outbox.Event{Topic: "test.order", Key: key, Payload: seqPayload{Key: key, Seq: next[key]}})
					next[key]++
					remaining--
				}
				if len(events) > 0 {
					write(t, pool, events...)
				}
			}
		}()
	}
	wg.Wait()
}

// rawEvent is an outbox row written with plain SQL, as producers in other
// languages (or older versions) write them.
type rawEvent struct {
	topic, key, payload, headers string
}

// writeRaw commits events in one transaction with plain INSERTs, in order,
// and returns their ids, with the outbox_event_sendable trigger disabled:
// rows the relay must cope with although today's schema refuses them, as a
// version of jobsd before migration 004 could have stored.
func writeRaw(t testing.TB, pool *pgxpool.Pool, events ...rawEvent) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER TABLE outbox_event DISABLE TRIGGER outbox_event_sendable"); err != nil {
			return err
		}
		for _, e := range events {
			if e.headers == "" {
				e.headers = "{}"
			}
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO outbox_event (topic, key, payload, headers) VALUES ($1, $2, $3, $4) RETURNING id`,
				e.topic, e.key, e.payload, e.headers).Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		_, err := tx.Exec(ctx, "ALTER TABLE outbox_event ENABLE TRIGGER outbox_event_sendable")
		return err
	})
	require.NoError(t, err)
	return ids
}

// countingHandler is a slog handler that counts records by level.
type countingHandler struct {
	mu    sync.Mutex
	warns int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warns++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) warnings() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.warns
}

// insertSeries inserts n events with plain SQL in one statement: key
// 'k<i % keys>', payload {"key","seq"} with seq counting per key from 0.
func insertSeries(t testing.TB, pool *pgxpool.Pool, n, keys int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO outbox_event (topic, key, payload)
		SELECT 'test.series', 'k' || (i % $2),
		       jsonb_build_object('key', 'k' || (i % $2), 'seq', i / $2, 'pad', repeat('x', 100))
		FROM generate_series(0, $1 - 1) AS i`, n, keys)
	require.NoError(t, err)
}

// insertSeriesHeld is insertSeries with the rows of key k0 held back: they
// are pending but not available for an hour, so no relay publishes them (nor
// any other row of k0) until release makes them available. A test that must
// stop or cut the relay before it drained everything holds a key, so that
// the relay cannot outrun it however loaded the machine is.
func insertSeriesHeld(t testing.TB, pool *pgxpool.Pool, n, keys int) (release func()) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO outbox_event (topic, key, payload, available_at)
		SELECT 'test.series', 'k' || (i % $2),
		       jsonb_build_object('key', 'k' || (i % $2), 'seq', i / $2, 'pad', repeat('x', 100)),
		       CASE WHEN i % $2 = 0 THEN now() + interval '1 hour' ELSE now() END
		FROM generate_series(0, $1 - 1) AS i`, n, keys)
	require.NoError(t, err)
	return func() {
		t.Helper()
		_, err := pool.Exec(context.Background(), `UPDATE outbox_event SET available_at = now() WHERE key = 'k0' AND state = 'pending'`)
		require.NoError(t, err)
	}
}

func stateCounts(t testing.TB, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state, count(*) FROM outbox_event GROUP BY state`)
	require.NoError(t, err)
	counts := map[string]int{}
	var state string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error { counts[state] = n; return nil })
	require.NoError(t, err)
	return counts
}

// received collects what the test consumer got.
type received struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at each delivery
	all      []amqp.Delivery
	distinct map[string]int // message id -> deliveries
}

func newReceived() *received {
	return &received{changed: make(chan struct{}), distinct: map[string]int{}}
}

func (r *received) add(d amqp.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, d)
	r.distinct[d.MessageId]++
	close(r.changed)
	r.changed = make(chan struct{})
}

// counts returns deliveries and distinct message ids so far.
func (r *received) counts() (total, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all), len(r.distinct)
}

// waitFor waits until cond (called under the lock) holds, woken at each delivery.
func (r *received) waitFor(t testing.TB, what string, cond func(r *received) bool) {
	t.Helper()
	// The wait fails when no message arrived for waitTimeout (a stall), not
	// after a fixed time: on a loaded machine a drain is slow but goes on.
	// limit bounds a wait that makes progress without ever getting there.
	stall := time.NewTimer(waitTimeout)
	defer stall.Stop()
	limit := time.NewTimer(10 * waitTimeout)
	defer limit.Stop()
	fail := func(why string) {
		total, distinct := r.counts()
		t.Fatalf("timed out waiting for %s: %s (received %d messages, %d distinct)", what, why, total, distinct)
	}
	for {
		r.mu.Lock()
		ok, changed := cond(r), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
			stall.Reset(waitTimeout)
		case <-stall.C:
			fail(fmt.Sprintf("no message for %v", waitTimeout))
		case <-limit.C:
			fail(fmt.Sprintf("still short after %v", 10*waitTimeout))
		}
	}
}

func (r *received) waitDistinct(t testing.TB, n int) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d distinct messages", n), func(r *received) bool { return len(r.distinct) >= n })
}

// orderViolations checks, per key, that sequence numbers were first seen in
// increasing order; it returns the violations found.
func (r *received) orderViolations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[string]int{} // key -> next unseen seq
	var out []string
	for _, d := range r.all {
		var p seqPayload
		if err := json.Unmarshal(d.Body, &p); err != nil {
			out = append(out, "undecodable body: "+err.Error())
			continue
		}
		key, _ := d.Headers[KeyHeader].(string)
		if key != p.Key {
			out = append(out, fmt.Sprintf("header %s=%q but payload key %q", KeyHeader, key, p.Key))
		}
		switch {
		case p.Seq < next[key]: // a redelivery of something already seen
		case p.Seq == next[key]:
			next[key]++
		default:
			out = append(out, fmt.Sprintf("key %s: seq %d arrived before seq %d", key, p.Seq, next[key]))
			next[key] = p.Seq + 1
		}
	}
	return out
}

// snapshot returns a copy of the deliveries so far.
func (r *received) snapshot() []amqp.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// countWhere counts outbox_event rows matching the condition.
func countWhere(t testing.TB, h *harness, cond string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_event WHERE `+cond, args...).Scan(&n))
	return n
}
