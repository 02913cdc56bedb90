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

// TestDeliveryLimitIsDeclared checks the queue's delivery limit by its
// effect: a message returned to the queue more than DeliveryLimit times is
// dead-lettered.
func TestDeliveryLimitIsDeclared(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config()
	cfg.DeliveryLimit = 2
	c := start(t, b.db.Pool, b.broker.URL, cfg)
	c.stop(t)
	require.False(t, b.logs.Contains("set_policy"))

	msg := event(newID())
	publish(t, b.broker, b.exchange, msg)
	ch := b.broker.Channel()
	returns := 0
	var dead []amqp.Delivery
	eventually(t, "the message dead-lettered by the delivery limit", func() bool {
		if d, ok, err := ch.Get(b.queue, false); err == nil && ok {
			require.NoError(t, d.Nack(false, true))
			returns++
		}
		if d, ok, err := ch.Get(consumer.DeadLetterQueue(b.queue), true); err == nil && ok {
			dead = append(dead, d)
		}
		return len(dead) == 1
	})
	require.Equal(t, msg.MessageId, dead[0].MessageId)
	require.LessOrEqual(t, returns, 3, "dead-lettered after DeliveryLimit returns")
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
