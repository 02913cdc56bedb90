package relay

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/outbox"
)

func TestRelayPublishesMessage(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	r := h.start(h.broker.URL, h.config())

	before := time.Now().Add(-time.Second).Truncate(time.Second)
	ids := write(t, h.db.Pool, outbox.Event{
		Topic:   "user.signed_up",
		Key:     "user-1",
		Payload: map[string]any{"user_id": "user-1"},
		Headers: map[string]string{"trace": "abc"},
	})
	h.got.waitDistinct(t, 1)

	var messageID string
	var state string
	var publishedAt *time.Time
	var claimedBy *string
	require.NoError(t, h.db.Pool.QueryRow(context.Background(),
		`SELECT message_id::text, state, published_at, claimed_by FROM outbox_event WHERE id = $1`, ids[0]).
		Scan(&messageID, &state, &publishedAt, &claimedBy))

	d := h.got.all[0]
	require.Equal(t, messageID, d.MessageId)
	require.Equal(t, "user.signed_up", d.Type)
	require.Equal(t, "application/json", d.ContentType)
	require.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
	require.False(t, d.Timestamp.Before(before), "timestamp %v", d.Timestamp)
	require.Equal(t, "abc", d.Headers["trace"])
	require.Equal(t, "user-1", d.Headers[KeyHeader])
	var body map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &body))
	require.Equal(t, map[string]any{"user_id": "user-1"}, body)
	require.True(t, r.BrokerConnected())

	// The row is marked published once the confirm came back; wait for the marker.
	require.Eventually(t, func() bool { return r.published.Load() == 1 }, waitTimeout, 5*time.Millisecond)
	require.NoError(t, h.db.Pool.QueryRow(context.Background(),
		`SELECT state, published_at, claimed_by FROM outbox_event WHERE id = $1`, ids[0]).
		Scan(&state, &publishedAt, &claimedBy))
	require.Equal(t, "published", state)
	require.NotNil(t, publishedAt)
	require.Nil(t, claimedBy)
}

func TestRelayDrainsBacklog(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	insertSeries(t, h.db.Pool, 3000, 100)
	cfg := h.config()
	cfg.BatchSize = 200
	cfg.Window = 100
	h.start(h.broker.URL, cfg)
	h.got.waitDistinct(t, 3000)
	require.Empty(t, h.got.orderViolations())
}

// TestRelayStrictOrder: with StrictOrder a key never has more than one
// message in flight (were the publisher not to wait, the window of 100 would
// let the 200 rows of each key in a batch pile up), so a broker nack cannot
// let later rows of the key overtake it; rows still arrive complete and in
// order.
func TestRelayStrictOrder(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	insertSeries(t, h.db.Pool, 600, 3)
	cfg := h.config()
	cfg.BatchSize, cfg.Window, cfg.StrictOrder = 200, 100, true
	rl := h.start(h.broker.URL, cfg)
	h.got.waitDistinct(t, 600)
	require.Empty(t, h.got.orderViolations())
	require.Equal(t, int64(1), rl.keyPeak.Load(), "one message in flight per key")
}
