package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/outbox"
)

// The relay's guarantees, each checked against the real Postgres and
// RabbitMQ: every committed event arrives (connection cuts, held
// transactions, crashed relays), per-key order holds with two relays, a
// poison row dies without blocking other keys.

func TestRelayNeverSkipsHeldTransaction(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	r := h.start(h.broker.URL, h.config())
	ctx := context.Background()

	// A transaction writes an event and stays open...
	tx, err := h.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	late, err := outbox.WriteReturningIDs(ctx, tx, outbox.Event{Topic: "test.late", Key: "late", Payload: seqPayload{Key: "late"}})
	require.NoError(t, err)

	// ...while later events (higher ids) commit and are relayed, over
	// several relay passes.
	for pass := 1; pass <= 5; pass++ {
		for i := 0; i < 4; i++ {
			ids := write(t, h.db.Pool, outbox.Event{Topic: "test.early", Key: fmt.Sprintf("k%d-%d", pass, i), Payload: seqPayload{}})
			require.Greater(t, ids[0], late[0])
		}
		h.got.waitDistinct(t, 4*pass)
	}
	require.Eventually(t, func() bool { return r.published.Load() == 20 }, waitTimeout, 5*time.Millisecond)

	// The late event commits after all of them: it must still arrive.
	require.NoError(t, tx.Commit(ctx))
	h.got.waitDistinct(t, 21)
	var lateMessageID string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT message_id::text FROM outbox_event WHERE id = $1`, late[0]).Scan(&lateMessageID))
	h.got.mu.Lock()
	defer h.got.mu.Unlock()
	require.Contains(t, h.got.distinct, lateMessageID)
}

func TestRelaySurvivesBrokerConnectionLoss(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	p := h.broker.NewProxy()
	cfg := h.config()
	cfg.BatchSize = 200
	cfg.Window = 100
	r := h.start(p.URL, cfg)
	const n = 2000
	release := insertSeriesHeld(t, h.db.Pool, n, 50)

	// Cut the connection mid-stream: the relay reconnects at once.
	h.got.waitDistinct(t, 300)
	p.Cut()

	// Take the broker away for a while: nothing is lost meanwhile.
	h.got.waitDistinct(t, 900)
	p.Refuse(true)
	p.Cut()
	require.Eventually(t, func() bool { return !r.BrokerConnected() }, waitTimeout, time.Millisecond)
	_, before := h.got.counts()
	require.Less(t, before, n, "the test must cut the broker before the relay drained everything")
	counts := stateCounts(t, h.db.Pool)
	require.Zero(t, counts["dead"])
	require.Greater(t, counts["pending"], 0)

	release()
	p.Refuse(false)
	h.got.waitDistinct(t, n)
	require.Eventually(t, func() bool { return stateCounts(t, h.db.Pool)["published"] == n }, waitTimeout, 10*time.Millisecond)
	require.True(t, r.BrokerConnected())
	total, distinct := h.got.counts()
	t.Logf("connection loss: %d messages received, %d distinct, %d duplicates", total, distinct, total-distinct)
	require.Empty(t, h.got.orderViolations())
}

// TestRelayStartsWithBrokerDown: events committed while the relay cannot
// reach the broker stay pending and go out once it is back.
func TestRelayStartsWithBrokerDown(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	p := h.broker.NewProxy()
	p.Refuse(true)
	r := h.start(p.URL, h.config())
	for i := 0; i < 10; i++ {
		write(t, h.db.Pool, outbox.Event{Topic: "test.down", Key: "k", Payload: seqPayload{Key: "k", Seq: i}})
	}
	require.False(t, r.BrokerConnected())
	require.Equal(t, 10, countWhere(t, h, `state = 'pending' AND claimed_by IS NULL`), "nothing is claimed without a broker")
	p.Refuse(false)
	h.got.waitDistinct(t, 10)
	require.True(t, r.BrokerConnected())
	require.Empty(t, h.got.orderViolations())
}

func TestRelayPerKeyOrderWithTwoRelays(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	relays := make([]*Relay, 2)
	for i := range relays {
		cfg := h.config()
		cfg.ID = fmt.Sprintf("relay-%d", i)
		cfg.BatchSize = 50
		cfg.Window = 20
		relays[i] = h.start(h.broker.URL, cfg)
	}

	// 50 keys x 40 events, written by 5 writers in small transactions that
	// mix keys, so that both relays claim rows of the same keys.
	const keys, perKey = 50, 40
	writeMixedKeys(t, h.db.Pool, keys, perKey, 5)
	h.got.waitDistinct(t, keys*perKey)
	require.Empty(t, h.got.orderViolations())
	require.Eventually(t, func() bool { return relays[0].published.Load()+relays[1].published.Load() == keys*perKey },
		waitTimeout, 5*time.Millisecond)
	t.Logf("relay-0 published %d, relay-1 published %d", relays[0].published.Load(), relays[1].published.Load())
	require.Positive(t, relays[0].published.Load(), "both relays must take part")
	require.Positive(t, relays[1].published.Load(), "both relays must take part")
}

// TestRelayPoisonRow: a row the broker refuses fails, backs off, becomes dead
// after MaxAttempts, and blocks only its own key meanwhile.
func TestRelayPoisonRow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		opts      harnessOpts
		headers   string // the poison row's headers (written with plain SQL)
		payload   string
		wantError string
	}{{
		// RabbitMQ routes on the "CC" header and requires it to be an array;
		// a string makes it close the channel with 406 PRECONDITION_FAILED.
		// The relay catches this before publishing (see
		// TestRelayUnsendableRowsDieAtOnce); with that check off, it must
		// reopen the channel and find which unconfirmed message was to blame.
		name:      "channel error",
		headers:   `{"CC": "not-an-array"}`,
		wantError: "PRECONDITION_FAILED",
	}, {
		// Headers larger than a frame make RabbitMQ close the whole
		// connection with FRAME_ERROR: the relay must trace it to the row
		// on the next connection, not take it as an outage.
		name:      "frame error",
		headers:   `{"big": "` + strings.Repeat("x", 200_000) + `"}`,
		wantError: "FRAME_ERROR",
	}, {
		// A queue with x-max-length-bytes and x-overflow=reject-publish
		// nacks a message larger than its limit.
		name:      "nack",
		opts:      harnessOpts{queueArgs: map[string]any{"x-max-length-bytes": int32(64 << 10), "x-overflow": "reject-publish"}},
		payload:   `{"key": "p", "seq": -1, "pad": "` + strings.Repeat("x", 100<<10) + `"}`,
		wantError: "nacked by the broker",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, tc.opts)
			cfg := h.config()
			cfg.MaxAttempts = 2
			cfg.RetryBackoff = time.Hour // the test ends the backoff itself
			cfg.noPrecheck = true
			h.start(h.broker.URL, cfg)
			ctx := context.Background()

			// The poison row is the first of key "p", written together with
			// other keys' rows so that it shares their batch and window.
			// It fails once before the rest is written.
			poison := rawEvent{topic: "test.poison", key: "p", payload: tc.payload, headers: tc.headers}
			if poison.payload == "" {
				poison.payload = `{"key": "p", "seq": -1}`
			}
			ids := writeRaw(t, h.db.Pool,
				rawEvent{topic: "test.order", key: "a", payload: `{"key": "a", "seq": 0}`},
				poison,
				rawEvent{topic: "test.order", key: "b", payload: `{"key": "b", "seq": 0}`})
			poisonID := ids[1]
			poisonState := func() (state string, attempt int, lastError string) {
				require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT state, attempt, coalesce(last_error, '') FROM outbox_event WHERE id = $1`, poisonID).
					Scan(&state, &attempt, &lastError))
				return state, attempt, lastError
			}
			require.Eventually(t, func() bool { _, attempt, _ := poisonState(); return attempt == 1 }, waitTimeout, 5*time.Millisecond)
			state, _, lastError := poisonState()
			require.Equal(t, "pending", state)
			require.Contains(t, lastError, tc.wantError)

			// While the poison row backs off, 9 more rounds of every key:
			// a and b continue at seq 1, c and p start at 0.
			for i := 1; i < 10; i++ {
				var events []outbox.Event
				for _, k := range []string{"a", "b", "c", "p"} {
					seq := i
					if k == "c" || k == "p" {
						seq = i - 1
					}
					events = append(events, outbox.Event{Topic: "test.order", Key: k, Payload: seqPayload{Key: k, Seq: seq}})
				}
				write(t, h.db.Pool, events...)
			}
			// Every other key flows...
			h.got.waitDistinct(t, 29)
			// ...and key p waits behind its poison row: none of its rows went out.
			for _, d := range h.got.snapshot() {
				require.NotEqual(t, "p", d.Headers[KeyHeader], "key p must wait for its poison row")
			}
			require.Equal(t, 9, countWhere(t, h, `key = 'p' AND state = 'pending' AND claimed_by IS NULL AND id > $1`, poisonID))

			// End the backoff: the second attempt fails too, the row is dead,
			// and key p flows: its 9 other rows arrive, in order.
			_, err := h.db.Pool.Exec(ctx, `UPDATE outbox_event SET available_at = now() WHERE id = $1`, poisonID)
			require.NoError(t, err)
			_, err = h.db.Pool.Exec(ctx, `SELECT pg_notify('jobsd_outbox', '')`)
			require.NoError(t, err)
			require.Eventually(t, func() bool { state, _, _ := poisonState(); return state == "dead" }, waitTimeout, 5*time.Millisecond)
			state, attempt, lastError := poisonState()
			require.Equal(t, 2, attempt)
			require.Contains(t, lastError, tc.wantError)
			h.got.waitDistinct(t, 38)
			for _, d := range h.got.snapshot() {
				var p seqPayload
				require.NoError(t, json.Unmarshal(d.Body, &p))
				require.NotEqual(t, -1, p.Seq, "the poison message must not have been delivered")
			}
			require.Empty(t, h.got.orderViolations())
		})
	}
}

// TestRelayUnsendableRowsDieAtOnce: rows the broker could never take
// (headers beyond its frame size, a string CC header), written by plain SQL
// among 1000 rows of 10 other keys, go dead at their first attempt with the
// reason; every other row is published, the poison key's next row follows,
// and the log stays small (no reconnect loop).
func TestRelayUnsendableRowsDieAtOnce(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	logs := &countingHandler{}
	cfg := h.config()
	cfg.Logger = slog.New(logs)
	var events []rawEvent
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("k%d", i%10)
		events = append(events, rawEvent{topic: "test.order", key: k, payload: fmt.Sprintf(`{"key": %q, "seq": %d}`, k, i/10)})
		switch i {
		case 100:
			events = append(events, rawEvent{topic: "test.poison", key: "p", payload: `{"key": "p", "seq": -1}`,
				headers: `{"big": "` + strings.Repeat("x", 200_000) + `"}`})
		case 200:
			events = append(events, rawEvent{topic: "test.poison", key: "p", payload: `{"key": "p", "seq": -1}`,
				headers: `{"CC": "a.b"}`})
		case 300:
			events = append(events, rawEvent{topic: "test.order", key: "p", payload: `{"key": "p", "seq": 0}`})
		}
	}
	writeRaw(t, h.db.Pool, events...)
	h.start(h.broker.URL, cfg)

	h.got.waitDistinct(t, 1001)
	require.Empty(t, h.got.orderViolations())
	rows, err := h.db.Pool.Query(context.Background(),
		`SELECT state, attempt, last_error FROM outbox_event WHERE topic = 'test.poison' ORDER BY id`)
	require.NoError(t, err)
	type poisonRow struct {
		State, LastError string
		Attempt          int
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (poisonRow, error) {
		var p poisonRow
		return p, r.Scan(&p.State, &p.Attempt, &p.LastError)
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "dead", got[0].State)
	require.Equal(t, 1, got[0].Attempt)
	require.Contains(t, got[0].LastError, "frame size")
	require.Equal(t, "dead", got[1].State)
	require.Equal(t, 1, got[1].Attempt)
	require.Contains(t, got[1].LastError, "CC must be an array")
	require.Less(t, logs.warnings(), 10, "warnings logged")
}

func TestRelayReturnedRowGoesDeadWithMandatory(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{noQueue: true})
	cfg := h.config()
	cfg.Mandatory = true
	cfg.MaxAttempts = 3
	cfg.RetryBackoff = time.Millisecond
	h.start(h.broker.URL, cfg)
	ids := write(t, h.db.Pool, outbox.Event{Topic: "test.unroutable", Key: "k", Payload: seqPayload{}})
	var state, lastError string
	var attempt int
	require.Eventually(t, func() bool {
		require.NoError(t, h.db.Pool.QueryRow(context.Background(),
			`SELECT state, attempt, coalesce(last_error, '') FROM outbox_event WHERE id = $1`, ids[0]).Scan(&state, &attempt, &lastError))
		return state == "dead"
	}, waitTimeout, 10*time.Millisecond)
	require.Equal(t, 3, attempt)
	require.Contains(t, lastError, "312 NO_ROUTE")
}

// TestRelayTakesOverExpiredLease: rows leased by a relay that died stay
// untouched until the lease ends, then another relay publishes them, keeping
// per-key order.
func TestRelayTakesOverExpiredLease(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	ctx := context.Background()
	insertSeries(t, h.db.Pool, 200, 10)
	// A crashed relay holds the first 30 rows (3 per key) for another second.
	_, err := h.db.Pool.Exec(ctx, `
		UPDATE outbox_event SET claimed_by = 'crashed', claimed_until = now() + interval '1 second'
		WHERE id IN (SELECT id FROM outbox_event ORDER BY id LIMIT 30)`)
	require.NoError(t, err)
	h.start(h.broker.URL, h.config())
	h.got.waitDistinct(t, 200)
	require.Empty(t, h.got.orderViolations())
	var stillClaimed int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_event WHERE claimed_by = 'crashed'`).Scan(&stillClaimed))
	require.Zero(t, stillClaimed)
}

// TestRelayStopsCleanly: Run returns nil on cancel mid-stream and leaves no
// row leased; another relay then drains the rest.
func TestRelayStopsCleanly(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	ctx := context.Background()
	const n = 3000
	release := insertSeriesHeld(t, h.db.Pool, n, 100)
	cfg := h.config()
	cfg.BatchSize = 100
	cfg.Window = 50
	r, err := New(h.db.Pool, h.broker.URL, cfg)
	require.NoError(t, err)
	stop := h.run(r)
	h.got.waitDistinct(t, 300)
	require.NoError(t, stop())

	var leased int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_event WHERE claimed_by IS NOT NULL`).Scan(&leased))
	require.Zero(t, leased, "a stopped relay releases its rows")
	counts := stateCounts(t, h.db.Pool)
	require.Equal(t, int(r.published.Load()), counts["published"])
	require.Less(t, counts["published"], n, "the test must stop the relay mid-stream")

	release()
	h.start(h.broker.URL, h.config())
	h.got.waitDistinct(t, n)
	require.Empty(t, h.got.orderViolations())
}

func TestRelayPollOnly(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	cfg := h.config()
	cfg.PollOnly = true
	cfg.PollInterval = 20 * time.Millisecond
	h.start(h.broker.URL, cfg)
	for i := 0; i < 3; i++ {
		write(t, h.db.Pool, outbox.Event{Topic: "test.poll", Key: "k", Payload: seqPayload{Key: "k", Seq: i}})
		h.got.waitDistinct(t, i+1)
	}
	// The relay ran, and no connection of it ever listened.
	var listening int
	require.NoError(t, h.db.Pool.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE '%LISTEN jobsd_outbox%'").Scan(&listening))
	require.Zero(t, listening, "PollOnly must not LISTEN")
}

func TestRelayRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		retention time.Duration
		wantRows  int
	}{
		{"delete at once", RetentionDeleteAtOnce, 0},
		{"positive deletes after the retention", 10 * time.Millisecond, 0},
		{"negative keeps", RetentionKeep, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, harnessOpts{})
			cfg := h.config()
			cfg.Retention = tc.retention
			r := h.start(h.broker.URL, cfg)
			for i := 0; i < 5; i++ {
				write(t, h.db.Pool, outbox.Event{Topic: "test.retention", Key: "k", Payload: seqPayload{Key: "k", Seq: i}})
			}
			h.got.waitDistinct(t, 5)
			require.Eventually(t, func() bool { return r.published.Load() == 5 }, waitTimeout, 5*time.Millisecond)
			count := func() int {
				var n int
				require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_event`).Scan(&n))
				return n
			}
			if tc.wantRows == 0 {
				require.Eventually(t, func() bool { return count() == 0 }, waitTimeout, 20*time.Millisecond)
			} else {
				require.Equal(t, tc.wantRows, count())
			}
		})
	}
}

// TestRelayPausesWhileBrokerBlocked: a broker under a resource alarm sends
// connection.blocked and stops reading. The relay claims nothing meanwhile,
// waits for confirms past its confirm timeout without reconnecting, and
// publishes nothing twice; everything arrives once the alarm clears.
func TestRelayPausesWhileBrokerBlocked(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	proxy := h.broker.NewProxy()
	cfg := h.config()
	cfg.Lease = 2 * time.Second // confirm timeout: 2s
	r := h.start(proxy.URL, cfg)
	events := func(from, n int) []outbox.Event {
		var out []outbox.Event
		for i := from; i < from+n; i++ {
			k := fmt.Sprintf("k%d", i%10)
			out = append(out, outbox.Event{Topic: "test.blocked", Key: k, Payload: seqPayload{Key: k, Seq: i / 10}})
		}
		return out
	}
	write(t, h.db.Pool, events(0, 100)...)
	h.got.waitDistinct(t, 100)

	proxy.Block("low on memory")
	require.Eventually(t, r.BrokerBlocked, waitTimeout, 5*time.Millisecond)
	write(t, h.db.Pool, events(100, 200)...)
	// Longer than the confirm timeout and several polls: a relay that took
	// the block for a broken broker would have reconnected and claimed.
	time.Sleep(3 * cfg.Lease)
	require.Equal(t, 200, countWhere(t, h, `state = 'pending' AND claimed_by IS NULL`), "claims pause while blocked")

	proxy.Unblock()
	h.got.waitDistinct(t, 300)
	require.Eventually(t, func() bool { return !r.BrokerBlocked() }, waitTimeout, 5*time.Millisecond)
	total, distinct := h.got.counts()
	require.Equal(t, distinct, total, "no duplicate deliveries")
	require.Empty(t, h.got.orderViolations())
}

// TestRelayStopsWhileBrokerHangs: a broker that stops reading mid-stream
// (with or without telling) must not keep Run from returning: every close
// has a deadline.
func TestRelayStopsWhileBrokerHangs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hang func(p *testbroker.Proxy)
		// hung reports that the relay is in the state to stop from:
		// blocked (it claims nothing then), or holding rows it publishes
		// into a connection nobody reads.
		hung func(h *harness, r *Relay) bool
	}{
		{"blocked", func(p *testbroker.Proxy) { p.Block("low on memory") },
			func(_ *harness, r *Relay) bool { return r.BrokerBlocked() }},
		{"stalled", func(p *testbroker.Proxy) { p.Stall() },
			func(h *harness, _ *Relay) bool {
				return countWhere(h.t, h, `claimed_by IS NOT NULL AND state = 'pending'`) > 0
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, harnessOpts{})
			proxy := h.broker.NewProxy()
			rl, err := New(h.db.Pool, proxy.URL, h.config())
			require.NoError(t, err)
			stop := h.run(rl)
			require.Eventually(t, rl.BrokerConnected, waitTimeout, 5*time.Millisecond)
			// Enough data to fill the socket buffers, so that the publisher
			// is stuck in a write when it is not told about the block. The
			// rows are written held back (available in an hour) and made
			// available once the broker hangs: writing 16 MB can take longer
			// on a loaded machine than the relay takes to notice a stalled
			// broker, and a relay that reconnects claims nothing.
			pad := strings.Repeat("x", 8<<10)
			var events []outbox.Event
			for i := 0; i < 2000; i++ {
				events = append(events, outbox.Event{Topic: "test.hang", Key: fmt.Sprint(i), Payload: map[string]string{"pad": pad}})
			}
			tx, err := h.db.Pool.Begin(context.Background())
			require.NoError(t, err)
			require.NoError(t, outbox.Write(context.Background(), tx, events...))
			_, err = tx.Exec(context.Background(), "UPDATE outbox_event SET available_at = now() + interval '1 hour'")
			require.NoError(t, err)
			require.NoError(t, tx.Commit(context.Background()))
			tc.hang(proxy)
			_, err = h.db.Pool.Exec(context.Background(), "UPDATE outbox_event SET available_at = now()")
			require.NoError(t, err)
			require.Eventually(t, func() bool { return tc.hung(h, rl) }, 3*waitTimeout, 5*time.Millisecond)
			start := time.Now()
			require.NoError(t, stop())
			// Liveness bound, not a timing measurement: confirm grace plus
			// close deadlines, with slack for a loaded machine.
			require.Less(t, time.Since(start), confirmGrace+4*closeTimeout+10*time.Second)
			require.Zero(t, countWhere(t, h, `claimed_by IS NOT NULL AND state = 'pending'`), "a stopped relay gives its rows back")
		})
	}
}

// TestRelayPerKeyOrderUnderDatabaseFaults: the per-key order must not depend
// on the relay's memory agreeing with the table. While relays drain 50 keys x
// 40 events, a loop terminates their database connections every 200 ms
// (claims whose COMMIT outcome is unknown, releases and marks that fail); in
// the second case a relay is also restarted under the same id again and
// again. Nothing is lost and no key's events arrive out of order.
func TestRelayPerKeyOrderUnderDatabaseFaults(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{false, true} {
		name := "two relays"
		if restart {
			name = "restarts under the same id"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, harnessOpts{})
			ctx := context.Background()
			// The relays get their own pool, named so that the killer can
			// find their connections (the relay's own pool and LISTEN
			// connection copy its settings).
			pcfg := h.db.Pool.Config().Copy()
			pcfg.ConnConfig.RuntimeParams["application_name"] = "relay-under-test"
			pool, err := pgxpool.NewWithConfig(ctx, pcfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			newRelay := func(id string) *Relay {
				cfg := h.config()
				cfg.ID = id
				cfg.BatchSize = 50
				cfg.Window = 20
				r, err := New(pool, h.broker.URL, cfg)
				require.NoError(t, err)
				return r
			}
			stop0 := h.run(newRelay("relay-0"))
			defer func() { _ = stop0() }()
			if !restart {
				h.run(newRelay("relay-1"))
			}

			killing, restarting := make(chan struct{}), make(chan struct{})
			var bg sync.WaitGroup
			bg.Add(1)
			go func() {
				defer bg.Done()
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-killing:
						return
					case <-tick.C:
						_, _ = h.db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
							WHERE datname = current_database() AND application_name = 'relay-under-test'`)
					}
				}
			}()
			if restart {
				bg.Add(1)
				go func() {
					defer bg.Done()
					for i := 0; ; i++ {
						select {
						case <-restarting:
							return
						case <-time.After(300 * time.Millisecond):
						}
						stop := h.run(newRelay("relay-1"))
						select {
						case <-restarting:
						case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
						}
						require.NoError(t, stop())
					}
				}()
			}

			const keys, perKey = 50, 40
			writeMixedKeys(t, h.db.Pool, keys, perKey, 5)
			h.got.waitDistinct(t, keys*perKey)
			close(killing)
			close(restarting)
			bg.Wait()
			total, distinct := h.got.counts()
			t.Logf("%d deliveries of %d events", total, distinct)
			require.Empty(t, h.got.orderViolations())
		})
	}
}

// TestRelayNotifiedOnlyWhileWaiting: writers send a NOTIFY only while a relay
// waits (migration 006). With polling effectively off, events written in
// bursts and trickles, across many idle and busy spells, must all arrive:
// a lost wake-up would leave one pending for an hour. A stopped relay no
// longer counts as waiting.
func TestRelayNotifiedOnlyWhileWaiting(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	cfg := h.config()
	cfg.PollInterval = time.Hour
	rl, err := New(h.db.Pool, h.broker.URL, cfg)
	require.NoError(t, err)
	stop := h.run(rl)
	waiting := func() int {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_relay_waiting`).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return waiting() == 1 }, waitTimeout, 5*time.Millisecond, "an idle relay waits")

	sent, next := 0, map[string]int{}
	for round := 0; round < 30; round++ {
		var wg sync.WaitGroup
		for w := 0; w < 1+rand.IntN(8); w++ {
			k := fmt.Sprintf("k%d", w)
			n := 1 + rand.IntN(20)
			wg.Add(1)
			go func(first int) {
				defer wg.Done()
				for i := 0; i < n; i++ {
					write(t, h.db.Pool, outbox.Event{Topic: "test.notify", Key: k, Payload: seqPayload{Key: k, Seq: first + i}})
				}
			}(next[k])
			next[k] += n
			sent += n
		}
		wg.Wait()
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	}
	h.got.waitDistinct(t, sent)
	require.Empty(t, h.got.orderViolations())
	require.NoError(t, stop())
	require.Zero(t, waiting(), "a stopped relay no longer waits")
}

// TestRelayFailsOverBetweenBrokers: with several AMQP URLs (a cluster's
// nodes), the relay starts on the first that answers and moves to another
// when its broker goes away; nothing is lost. Two proxies to the test's
// broker stand for two nodes; a closed port stands for a node that is down.
func TestRelayFailsOverBetweenBrokers(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	first, second := h.broker.NewProxy(), h.broker.NewProxy()
	down := strings.Replace(h.broker.URL, "127.0.0.1:5672", "127.0.0.1:1", 1)
	r := h.start(down+", "+first.URL+","+second.URL, h.config())
	require.Eventually(t, r.BrokerConnected, waitTimeout, 5*time.Millisecond)

	events := func(from, n int) []outbox.Event {
		var out []outbox.Event
		for i := from; i < from+n; i++ {
			out = append(out, outbox.Event{Topic: "test.failover", Key: "k", Payload: seqPayload{Key: "k", Seq: i}})
		}
		return out
	}
	write(t, h.db.Pool, events(0, 100)...)
	h.got.waitDistinct(t, 100)

	// The node in use goes away for good: the relay moves to the other.
	first.Refuse(true)
	first.Cut()
	write(t, h.db.Pool, events(100, 100)...)
	h.got.waitDistinct(t, 200)
	require.Empty(t, h.got.orderViolations())
}

func TestSplitAndRedactURLs(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"amqp://a:1/", "amqp://b:2/"}, SplitURLs(" amqp://a:1/ ,, amqp://b:2/ "))
	require.Empty(t, SplitURLs(" , "))
	require.Equal(t, "amqp://u:xxxxx@a:1/,amqp://u:xxxxx@b:2/", RedactURL("amqp://u:p1@a:1/,amqp://u:p2@b:2/"))
}
