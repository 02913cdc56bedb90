package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// relayConsumer counts what reaches a queue bound to the test's exchange.
type relayConsumer struct {
	mu       sync.Mutex
	total    int
	distinct map[string]bool
	next     map[string]int // per key, the next sequence number not yet seen
	errs     []string       // per-key order violations
}

func newRelayConsumer(t *testing.T, b *testbroker.Broker, exchange string) *relayConsumer {
	t.Helper()
	ch := b.Channel()
	require.NoError(t, ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil))
	_, err := ch.QueueDeclare(exchange, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(exchange, "", exchange, false, nil))
	deliveries, err := ch.Consume(exchange, "", true, false, false, false, nil)
	require.NoError(t, err)
	c := &relayConsumer{distinct: map[string]bool{}, next: map[string]int{}}
	go func() {
		for d := range deliveries {
			var p struct {
				Key string `json:"key"`
				Seq int    `json:"seq"`
			}
			_ = json.Unmarshal(d.Body, &p)
			c.mu.Lock()
			c.total++
			c.distinct[d.MessageId] = true
			switch {
			case p.Seq < c.next[p.Key]:
			case p.Seq == c.next[p.Key]:
				c.next[p.Key]++
			default:
				c.errs = append(c.errs, fmt.Sprintf("key %s: seq %d before %d", p.Key, p.Seq, c.next[p.Key]))
				c.next[p.Key] = p.Seq + 1
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *relayConsumer) counts() (total, distinct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, len(c.distinct)
}

func (c *relayConsumer) waitDistinct(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { _, d := c.counts(); return d >= n }, 2*time.Minute, 10*time.Millisecond,
		"want %d distinct messages", n)
}

// TestServeRelaySIGKILL runs two `jobsd serve` relays on one outbox, kills one
// with SIGKILL while both publish, and checks that every event arrives, in
// per-key order, with a bounded number of duplicates.
func TestServeRelaySIGKILL(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	exchange := b.Name("sigkill")
	consumer := newRelayConsumer(t, b, exchange)
	const batch, window = 200, 100
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL}
	args := []string{"serve", "--http-addr", "-", "--workers", "1", "--exchange", exchange,
		"--relay-lease", "10m", "--relay-poll", "200ms",
		"--relay-batch", fmt.Sprint(batch), "--relay-window", fmt.Sprint(window)}
	procs := map[string]*testbin.Process{}
	for i := 0; i < 2; i++ {
		p := testbin.Start(t, env, args...)
		require.Eventually(t, func() bool { return strings.Contains(p.Output(), "broker connected") },
			time.Minute, 10*time.Millisecond, "relay did not connect:\n%s", p.Output())
		procs[relayID(t, p.Output())] = p
	}

	// The rows of key k0 are held back (available in an hour) until the
	// victim is dead, so that it dies mid-stream however fast the relays run:
	// the relays claim none of them, and no later row of k0 either.
	const n, keys = 6000, 1000
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO outbox_event (topic, key, payload, available_at)
		SELECT 'test.kill', 'k' || (i % $2), jsonb_build_object('key', 'k' || (i % $2), 'seq', i / $2),
		       CASE WHEN i % $2 = 0 THEN now() + interval '1 hour' ELSE now() END
		FROM generate_series(0, $1 - 1) AS i`, n, keys)
	require.NoError(t, err)

	// Kill a relay while it holds leased rows (mid-batch). The test locks the
	// rows leased to the victim (FOR SHARE) before the kill and keeps them
	// locked until the victim is dead: the victim can neither mark nor release
	// them, and the other relay's claim skips them, so however slowly this
	// goroutine runs on a loaded machine, they are leased to a dead relay. A
	// victim that holds no row at that moment (between batches) is looked at
	// again.
	consumer.waitDistinct(t, n/10)
	var victimID string
	for id := range procs {
		victimID = id
		break
	}
	victim := procs[victimID]
	delete(procs, victimID)
	var survivor *testbin.Process
	for _, p := range procs {
		survivor = p
	}
	var orphaned int
	for deadline := time.Now().Add(time.Minute); orphaned == 0; {
		require.True(t, time.Now().Before(deadline), "relay %s never held a leased row", victimID)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		rows, _ := tx.Query(ctx, `SELECT id FROM outbox_event
			WHERE claimed_by LIKE $1 || '/%' AND state = 'pending' FOR SHARE`, victimID)
		held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		if orphaned = len(held); orphaned > 0 {
			victim.Kill()
		}
		require.NoError(t, tx.Rollback(ctx))
		if orphaned == 0 {
			time.Sleep(5 * time.Millisecond) // between two batches: look again
		}
	}
	_, atKill := consumer.counts()
	t.Logf("killed %s with %d rows leased, %d of %d events delivered", victimID, orphaned, atKill, n)
	require.Less(t, atKill, n, "the relay must be killed mid-stream")
	_, err = db.Pool.Exec(ctx, "UPDATE outbox_event SET available_at = now() WHERE key = 'k0' AND state = 'pending'")
	require.NoError(t, err)

	// The victim's leases last 10 minutes: the survivor finds it dead (its
	// liveness lock free) and takes its rows back within seconds.
	consumer.waitDistinct(t, n)
	require.Contains(t, survivor.Output(), "gave back the work of dead processes", "the survivor releases the dead relay's leases")
	var pending, leased int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE state <> 'published'), count(*) FILTER (WHERE claimed_by IS NOT NULL) FROM outbox_event`).
		Scan(&pending, &leased))
	total, distinct := consumer.counts()
	t.Logf("SIGKILL of one of two relays: %d messages received, %d distinct, %d duplicates (bound: batch %d + window %d)",
		total, distinct, total-distinct, batch, window)
	require.LessOrEqual(t, total-distinct, batch+window)
	consumer.mu.Lock()
	require.Empty(t, consumer.errs, "per-key order")
	consumer.mu.Unlock()

	require.NoError(t, survivor.Signal(syscall.SIGTERM))
	require.Equal(t, 0, survivor.Wait(time.Minute), survivor.Output())
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE state <> 'published'), count(*) FILTER (WHERE claimed_by IS NOT NULL) FROM outbox_event`).
		Scan(&pending, &leased))
	require.Zero(t, pending, "every row is published")
	require.Zero(t, leased, "no row stays leased")
	require.NotContains(t, survivor.Output(), "guest:guest", "the AMQP password must not be logged")
}

// relayID finds the relay's id in the log of a jobsd serve.
func relayID(t *testing.T, log string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(line, "relay_id="); ok && strings.Contains(line, "relay started") {
			id, _, _ := strings.Cut(rest, " ")
			return id
		}
	}
	t.Fatalf("no relay_id in the log:\n%s", log)
	return ""
}

func TestServeRelayFlagErrors(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	env := []string{"DATABASE_URL=" + db.URL}
	for _, args := range [][]string{
		{"serve", "--relay-batch", "0"},
		{"serve", "--relay-window", "-1"},
		{"serve", "--relay-lease", "1ms"},
		{"serve", "--exchange", "bad name"},
		{"serve", "--relay-poll", "soon"},
		{"--amqp-url", "http://guest:hunter2@host/", "serve"},
	} {
		res := testbin.Run(t, env, args...)
		require.Equal(t, 2, res.Code, "%v: %s", args, res.Stderr)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(res.Stderr), "\n")+1, "one line on stderr: %q", res.Stderr)
		require.NotContains(t, res.Stderr, "hunter2")
		require.NotContains(t, res.Stderr, "panic")
	}
}
