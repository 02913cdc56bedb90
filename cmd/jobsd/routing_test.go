package main

import (
	"context"
	"strings"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestConsumeBindingKeys runs two consumers on the default topic exchange:
// one bound with --binding-key twice gets only the topics they match, the
// other (default '#') gets everything.
func TestConsumeBindingKeys(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	exchange, some, all := b.Name("x"), b.Name("some"), b.Name("all")
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL, "JOBSD_EXCHANGE=" + exchange}
	pSome := testbin.Start(t, env, "consume", "--queue", some, "--binding-key", "user.*", "--binding-key", "billing.#")
	pAll := testbin.Start(t, env, "consume", "--queue", all)
	waitConsumers(t, b, some, pSome)
	waitConsumers(t, b, all, pAll)

	msgs := consumeEvents(4)
	for i, topic := range []string{"user.signed_up", "order.created", "billing.invoice.paid", "user.profile.updated"} {
		msgs[i].Type = topic
	}
	publishRouted(t, b, exchange, msgs)
	waitInbox(t, db.Pool, all, 4)
	waitInbox(t, db.Pool, some, 2)
	for _, p := range []*testbin.Process{pSome, pAll} {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		require.Equal(t, 0, p.Wait(consumeTestTimeout), p.Output())
	}
	var ids []string
	rows, err := db.Pool.Query(context.Background(), `SELECT message_id::text FROM consumer_inbox WHERE queue = $1`, some)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{msgs[0].MessageId, msgs[2].MessageId}, ids)
	require.NotContains(t, pSome.Output(), "level=WARN")
}

// publishRouted publishes msgs with their type as routing key, as the relay
// does, and waits for the confirms.
func publishRouted(t *testing.T, b *testbroker.Broker, exchange string, msgs []amqp.Publishing) {
	t.Helper()
	ch := b.Channel()
	require.NoError(t, ch.Confirm(false))
	for _, m := range msgs {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, m.Type, false, false, m)
		require.NoError(t, err)
		ok, err := dc.WaitContext(context.Background())
		require.NoError(t, err)
		require.True(t, ok)
	}
}

func TestRoutingFlagErrors(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + testbroker.URL()}
	for _, args := range [][]string{
		{"serve", "--exchange-type", "direct"},
		{"consume", "--queue", "q", "--exchange-type", "headers"},
	} {
		res := testbin.Run(t, env, args...)
		require.Equal(t, exitUsage, res.Code, "jobsd %v: %s", args, res.Stderr)
		require.Contains(t, res.Stderr, "--exchange-type must be topic or fanout")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(res.Stderr), "\n")+1, "one line on stderr: %q", res.Stderr)
	}
}
