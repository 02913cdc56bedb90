// Package testbroker connects tests to the real RabbitMQ: unique exchange and
// queue names per test (deleted when the test ends), and a TCP proxy that a
// test can cut to simulate a lost broker connection without touching the
// shared broker.
//
// Only _test.go files may import it. The broker is TEST_AMQP_URL (default the
// local guest account). When it is unreachable the test is skipped, or fails
// when CI is set.
package testbroker

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// URL is the broker tests use.
func URL() string {
	if u := os.Getenv("TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Broker is one test's view of the broker.
type Broker struct {
	t    testing.TB
	URL  string
	Conn *amqp.Connection // for the test's own declarations and assertions
}

// New connects to the broker for t; the connection closes when t ends.
func New(t testing.TB) *Broker {
	t.Helper()
	conn, err := amqp.Dial(URL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testbroker: RabbitMQ unreachable at TEST_AMQP_URL (CI is set, so this fails): %v", err)
		}
		t.Skipf("testbroker: RabbitMQ unreachable, skipping (set CI=1 to fail instead): %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &Broker{t: t, URL: URL(), Conn: conn}
}

// Name returns a name unique to this test run, starting with prefix, and
// deletes the exchange and the queues of that name (and name+".dead") when the
// test ends.
func (b *Broker) Name(prefix string) string {
	buf := make([]byte, 4)
	_, _ = rand.Read(buf)
	name := "test." + prefix + "." + hex.EncodeToString(buf)
	b.t.Cleanup(func() { b.delete(name) })
	return name
}

func (b *Broker) delete(name string) {
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, q := range []string{name, name + ".dead"} {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range []string{name, name + ".dead", name + ".dlx"} {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

// Channel opens a channel on the test's connection, closed when t ends.
func (b *Broker) Channel() *amqp.Channel {
	b.t.Helper()
	ch, err := b.Conn.Channel()
	if err != nil {
		b.t.Fatalf("testbroker: open channel: %v", err)
	}
	b.t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// hostPort returns the host:port of an amqp:// URL.
func hostPort(url string) string {
	rest := url[strings.Index(url, "://")+3:]
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	host, _, _ := strings.Cut(rest, "/")
	if !strings.Contains(host, ":") {
		host += ":5672"
	}
	return host
}
