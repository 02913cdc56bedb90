package demo

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbroker"
)

// TestResetQueue: a queue that does not exist yet is no error; an existing
// one is emptied and the count of dropped messages returned.
func TestResetQueue(t *testing.T) {
	t.Parallel()
	b := testbroker.New(t)
	name := b.Name("demoreset")

	n, err := resetQueue(b.URL, name, name)
	require.NoError(t, err)
	require.Zero(t, n, "no queue yet")

	ch := b.Channel()
	_, err = ch.QueueDeclare(name, false, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	for range 3 {
		c, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", name, false, false, amqp.Publishing{Body: []byte("{}")})
		require.NoError(t, err)
		ok, err := c.WaitContext(t.Context())
		require.NoError(t, err)
		require.True(t, ok)
	}
	n, err = resetQueue(b.URL, name, name)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	require.NoError(t, err)
	require.Zero(t, q.Messages)
}
