package consumer_test

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/consumer"
)

// declareQueue declares queue as a consumer of bundle b would, with limit as
// x-delivery-limit unless it is negative, and returns the error.
func declareQueue(t *testing.T, b *bundle, limit int) error {
	t.Helper()
	ch, err := b.broker.Conn.Channel()
	require.NoError(t, err)
	defer ch.Close() //nolint:errcheck // closed already after a failed declare
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-dead-letter-exchange": consumer.DeadLetterExchange(b.queue)}
	if limit >= 0 {
		args["x-delivery-limit"] = int64(limit)
	}
	_, err = ch.QueueDeclare(b.queue, true, false, false, false, args)
	return err
}

func TestDeliveryLimitIsDeclared(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config()
	cfg.DeliveryLimit = 7
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	c.stop(t)
	require.NoError(t, declareQueue(t, b, 7), "the queue has x-delivery-limit 7")
	require.Error(t, declareQueue(t, b, 8))
	require.False(t, b.logs.Contains("set_policy"))
}

// TestQueueWithoutDeliveryLimit: a queue declared by an older jobsd, without
// x-delivery-limit, cannot take the argument (PRECONDITION_FAILED); the
// consumer uses it as it is and says once how to set the limit by policy.
func TestQueueWithoutDeliveryLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, declareQueue(t, b, -1))
	c := start(t, b.db.Pool, b.broker.URL, b.config())
	publish(t, b.broker, b.exchange, event(newID()))
	eventually(t, "message processed", func() bool { return c.Stats().Processed == 1 })
	c.stop(t)
	require.Equal(t, 1, b.logs.Count("the queue exists without x-delivery-limit"))
	require.True(t, b.logs.Contains(`rabbitmqctl set_policy --apply-to queues`))
	require.True(t, b.logs.Contains(`{\"delivery-limit\":20}`), b.logs.String())
	require.NoError(t, declareQueue(t, b, -1), "the queue is unchanged")
}
