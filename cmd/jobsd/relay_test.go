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
		"--relay-lease", "2s", "--relay-poll", "200ms",
		"--relay-batch", fmt.Sprint(batch), "--relay-window", fmt.Sprint(window)}
	procs := map[string]*testbin.Process{}
	for i := 0; i < 2; i++ {
		p := testbin.Start(t, env, args...)
		require.Eventually(t, func() bool { return strings.Contains(p.Output(), "broker connected") },
			time.Minute, 10*time.Millisecond, "relay did not connect:\n%s", p.Output())
		procs[relayID(t, p.Output())] = p
	}

	const n, keys = 6000, 1000
	_, err := db.Pool.Exec(context.Background(), `
		INSERT INTO outbox_event (topic, key, payload)
		SELECT 'test.kill', 'k' || (i % $2), jsonb_build_object('key', 'k' || (i % $2), 'seq', i / $2)
		FROM generate_series(0, $1 - 1) AS i`, n, keys)
	require.NoError(t, err)

	// Kill a relay while it holds leased rows (mid-batch): at least a batch,
	// so that they cannot all be marked published before the kill lands.
	consumer.waitDistinct(t, n/10)
	leasedBy := func(id string) int {
		var c int
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM outbox_event WHERE claimed_by LIKE $1 || '/%' AND state = 'pending'`, id).Scan(&c))
		return c
	}
	var victimID string
	require.Eventually(t, func() bool {
		for id := range procs {
			if leasedBy(id) >= batch {
				victimID = id
				return true
			}
		}
		return false
	}, time.Minute, time.Millisecond)
	victim := procs[victimID]
	delete(procs, victimID)
	var survivor *testbin.Process
	for _, p := range procs {
		survivor = p
	}
	victim.Kill()
	_, atKill := consumer.counts()
	orphaned := leasedBy(victimID)
	t.Logf("killed %s with %d rows leased, %d of %d events delivered", victimID, orphaned, atKill, n)
	require.Positive(t, orphaned, "the relay must be killed mid-batch")
	require.Less(t, atKill, n, "the relay must be killed mid-stream")

	consumer.waitDistinct(t, n)
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
