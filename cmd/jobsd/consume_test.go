package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

const consumeTestTimeout = 90 * time.Second

func TestConsumeUsageErrors(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + testbroker.URL(), "JOBSD_QUEUE="}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"consume"}, "jobsd: missing --queue (see 'jobsd consume --help')"},
		{[]string{"consume", "--queue", "q", "--prefetch", "0"}, "jobsd: --prefetch must be at least 1"},
		{[]string{"consume", "--queue", "q", "--prefetch", "abc"}, "invalid value \"abc\" for flag -prefetch"},
		{[]string{"consume", "--queue", "q", "--prefetch", "10", "--batch-size", "20"}, "BatchSize must be between 1 and Prefetch (10)"},
		{[]string{"consume", "--queue", "amq.q"}, "reserves"},
		{[]string{"consume", "--queue", "q", "--max-attempts", "0"}, "jobsd: --max-attempts must be at least 1"},
		{[]string{"consume", "--queue", "q", "--delivery-limit", "0"}, "jobsd: --delivery-limit must be at least 1, or -1 for none"},
		{[]string{"consume", "--queue", "q", "--inbox-retention", "week"}, "invalid value \"week\" for flag -inbox-retention"},
	} {
		res := testbin.Run(t, env, tc.args...)
		require.Equal(t, exitUsage, res.Code, "jobsd %v: %s", tc.args, res.Stderr)
		require.Contains(t, res.Stderr, tc.want)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(res.Stderr), "\n")+1, "one line on stderr: %q", res.Stderr)
	}
}

func TestConsumeBrokerUnreachable(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res := testbin.Run(t, []string{"DATABASE_URL=" + db.URL, "AMQP_URL=amqp://guest:s3cret@127.0.0.1:1/"},
		"consume", "--queue", "test.unreachable")
	require.Equal(t, exitFailure, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, "jobsd: consumer: cannot reach RabbitMQ at amqp://guest:xxxxx@127.0.0.1:1/")
	require.NotContains(t, res.Stderr, "s3cret")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(res.Stderr), "\n")+1, "one line on stderr: %q", res.Stderr)
}

// TestConsumeKilledMidStream SIGKILLs a consumer while it holds unacked
// messages; a second consumer finishes the queue and every distinct message
// is counted exactly once.
func TestConsumeKilledMidStream(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	exchange, queue := b.Name("x"), b.Name("q")
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL}
	args := []string{"consume", "--queue", queue, "--exchange", exchange}

	// A first run declares the queue; SIGTERM stops it with exit 0. The
	// messages then wait in the queue, so the next consumer has a backlog.
	setupRun := testbin.Start(t, env, args...)
	waitConsumers(t, b, queue, setupRun)
	require.NoError(t, setupRun.Signal(syscall.SIGTERM))
	require.Equal(t, 0, setupRun.Wait(consumeTestTimeout), setupRun.Output())
	msgs := consumeEvents(1900)
	msgs = append(msgs, msgs[:100]...) // 2000 deliveries, 1900 distinct ids
	consumePublish(t, b, exchange, msgs)

	// The test holds an uncommitted inbox row of message 1500 until the first
	// consumer is dead: the consumer's batch with that message waits for it,
	// so the consumer cannot finish the queue before the kill, however slowly
	// this goroutine runs on a loaded machine.
	hold, err := db.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = hold.Exec(context.Background(), "INSERT INTO consumer_inbox (queue, message_id) VALUES ($1, $2)", queue, msgs[1500].MessageId)
	require.NoError(t, err)
	first := testbin.Start(t, env, args...)
	inboxAtKill := waitInbox(t, db.Pool, queue, 300)
	first.Kill()
	require.NoError(t, hold.Rollback(context.Background()))
	require.Less(t, inboxAtKill, int64(1900), "killed mid-stream")

	second := testbin.Start(t, env, args...)
	waitInbox(t, db.Pool, queue, 1900)
	require.NoError(t, second.Signal(syscall.SIGTERM))
	require.Equal(t, 0, second.Wait(consumeTestTimeout), second.Output())

	var n, inbox int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
		SELECT (SELECT coalesce(sum(n), 0) FROM analytics_counts),
		       (SELECT count(*) FROM consumer_inbox WHERE queue = $1)`, queue).Scan(&n, &inbox))
	require.EqualValues(t, 1900, n, "each distinct message counted exactly once")
	require.EqualValues(t, 1900, inbox)
	require.Zero(t, readyMessages(t, b, queue))
	totals := consumerTotals(t, second.Output())
	t.Logf("killed at %d processed; the second consumer: %v", inboxAtKill, totals)
}

// TestConsumeTwoProcessesShareWork runs two consumers on one queue; both get
// work, the total is exact, and SIGTERM stops each with exit 0.
func TestConsumeTwoProcessesShareWork(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	exchange, queue := b.Name("x"), b.Name("q")
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL, "JOBSD_QUEUE=" + queue, "JOBSD_EXCHANGE=" + exchange}
	args := []string{"consume", "--prefetch", "20", "--concurrency", "1", "--progress-interval", "100ms"}
	p1 := testbin.Start(t, env, args...)
	p2 := testbin.Start(t, env, args...)
	waitConsumers(t, b, queue, p1, p2)

	consumePublish(t, b, exchange, consumeEvents(1000))
	waitInbox(t, db.Pool, queue, 1000)
	for _, p := range []*testbin.Process{p1, p2} {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		require.Equal(t, 0, p.Wait(consumeTestTimeout), p.Output())
	}
	t1, t2 := consumerTotals(t, p1.Output()), consumerTotals(t, p2.Output())
	t.Logf("consumer 1: %v; consumer 2: %v", t1, t2)
	require.NotZero(t, t1["processed"], "both consumers get work")
	require.NotZero(t, t2["processed"], "both consumers get work")
	require.EqualValues(t, 1000, t1["processed"]+t2["processed"])
}

// waitConsumers waits until queue has one AMQP consumer per process (each
// runs --concurrency of them, so at least len(ps)).
func waitConsumers(t *testing.T, b *testbroker.Broker, queue string, ps ...*testbin.Process) {
	t.Helper()
	deadline := time.Now().Add(consumeTestTimeout)
	for {
		ch, err := b.Conn.Channel()
		require.NoError(t, err)
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err == nil {
			_ = ch.Close()
			if q.Consumers >= len(ps) {
				return
			}
		}
		for _, p := range ps {
			select {
			case <-p.Done():
				t.Fatalf("jobsd consume exited early:\n%s", p.Output())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s has no consumers in time", queue)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitInbox polls the database until queue's inbox has at least n rows and
// returns the count.
func waitInbox(t *testing.T, pool *pgxpool.Pool, queue string, n int64) int64 {
	t.Helper()
	deadline := time.Now().Add(consumeTestTimeout)
	for {
		var got int64
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FROM consumer_inbox WHERE queue = $1", queue).Scan(&got))
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox of %s has %d rows, want %d", queue, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readyMessages(t *testing.T, b *testbroker.Broker, queue string) int {
	t.Helper()
	ch, err := b.Conn.Channel()
	require.NoError(t, err)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	require.NoError(t, err)
	return q.Messages
}

// consumeEvents returns n events as the relay publishes them, with fresh ids.
func consumeEvents(n int) []amqp.Publishing {
	out := make([]amqp.Publishing, n)
	for i := range out {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		out[i] = amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			MessageId:    fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:]),
			Type:         "user.signed_up",
			Timestamp:    time.Now(),
			ContentType:  "application/json",
			Body:         []byte(`{"user_id":` + strconv.Itoa(i) + `}`),
		}
	}
	return out
}

// consumePublish publishes msgs with confirms and waits for them all.
func consumePublish(t *testing.T, b *testbroker.Broker, exchange string, msgs []amqp.Publishing) {
	t.Helper()
	ch := b.Channel()
	require.NoError(t, ch.Confirm(false))
	ctx, cancel := context.WithTimeout(context.Background(), consumeTestTimeout)
	defer cancel()
	var confirms []*amqp.DeferredConfirmation
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "", false, false, m)
		require.NoError(t, err)
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
}

var totalsLine = regexp.MustCompile(`msg="consumer totals" .*processed=(\d+) duplicates=(\d+) rejected=(\d+) requeued=(\d+)`)

// consumerTotals parses the "consumer totals" line a consumer logs on exit.
func consumerTotals(t *testing.T, output string) map[string]int64 {
	t.Helper()
	m := totalsLine.FindStringSubmatch(output)
	require.NotNil(t, m, "no totals line in:\n%s", output)
	out := map[string]int64{}
	for i, k := range []string{"processed", "duplicates", "rejected", "requeued"} {
		out[k], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	return out
}
