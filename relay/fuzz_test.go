package relay

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/internal/testbroker"
)

// FuzzMessage feeds arbitrary headers (as stored in outbox_event.headers),
// topics and keys to the relay's message encoding. What message accepts must
// be published and confirmed by a real RabbitMQ on one connection that stays
// open: a message the broker would refuse (closing the channel or the whole
// connection) must be refused by message first, as a row that can never be
// sent. What it refuses must say why. Keys of odd length are published with
// the CloudEvents envelope, whose headers count in the frame size too. Seeds
// live in testdata/relay/.
func FuzzMessage(f *testing.F) {
	dir := filepath.Join("..", "testdata", "relay")
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("user.signed_up", "42", b)
	}
	f.Add("", "", []byte(`{}`))
	f.Add("t\xff", "k\x00", []byte(`{"a":"\u0000"}`))
	f.Add("user.signed_up", "4", []byte(`{"cloudEvents_id":"x","cloudEvents_Bad-Name":1}`))

	broker := testbroker.New(f)
	exchange := broker.Name("fuzz")
	require := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	require(broker.Channel().ExchangeDeclare(exchange, amqp.ExchangeFanout, false, true, false, false, nil))
	var (
		mu   sync.Mutex
		conn *amqp.Connection
		ch   *amqp.Channel
	)
	channel := func(t *testing.T) (*amqp.Connection, *amqp.Channel) {
		mu.Lock()
		defer mu.Unlock()
		if conn == nil || conn.IsClosed() || ch.IsClosed() {
			if conn != nil {
				_ = conn.Close()
			}
			c, err := amqp.Dial(broker.URL)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := c.Channel()
			if err == nil {
				err = cc.Confirm(false)
			}
			if err != nil {
				t.Fatal(err)
			}
			conn, ch = c, cc
		}
		return conn, ch
	}
	f.Cleanup(func() {
		if conn != nil {
			_ = conn.Close()
		}
	})

	f.Fuzz(func(t *testing.T, topic, key string, headers []byte) {
		c, ch := channel(t)
		rw := &row{ID: 1, MessageID: "5b0c3bd6-4a7c-4a57-9c51-9f1f5c2b6c0e", Topic: topic, Key: key,
			Payload: []byte(`{}`), Headers: headers, CreatedAt: time.Unix(0, 0)}
		cfg := Config{}.WithDefaults()
		if len(key)%2 == 1 {
			cfg.Envelope, cfg.Source = EnvelopeCloudEvents, "https://example.com/fuzz"
		}
		msg, err := message(rw, cfg.envelope(), c.Config.FrameSize)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal must say why")
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), exchange, topic, false, false, msg)
		if err != nil {
			t.Fatalf("message accepted headers %q but publishing failed: %v", headers, err)
		}
		select {
		case <-dc.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("no confirm in 30s")
		}
		if !dc.Acked() || ch.IsClosed() || c.IsClosed() {
			t.Fatalf("message accepted headers %q (topic %q) but the broker refused it (channel closed: %v, connection closed: %v)",
				headers, topic, ch.IsClosed(), c.IsClosed())
		}
	})
}
