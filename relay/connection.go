package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Reconnection backoff: capped exponential with jitter.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 10 * time.Second
	dialTimeout  = 10 * time.Second
	heartbeat    = 10 * time.Second
)

// brokerLoop connects to the broker, publishes until the connection is lost,
// and reconnects with backoff, until ctx is done. Rows unconfirmed when the
// broker closed the connection over a message's content are carried over as
// suspects and published one at a time on the next connection.
func (u *run) brokerLoop() {
	b := backoff{min: reconnectMin, max: reconnectMax}
	var suspects []*row
	for u.ctx.Err() == nil {
		conn, err := u.dial()
		if err == nil {
			suspects, err = u.serveConnection(conn, &b, suspects)
			_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		}
		u.setConnected(false)
		if u.ctx.Err() != nil {
			break
		}
		d := b.next()
		u.log.Warn("broker unavailable; rows stay pending until it is back", "broker", RedactURL(u.amqpURL),
			"err", err, "retry_in", d.Round(time.Millisecond))
		sleep(u.ctx, d)
	}
	u.release(suspects...)
}

// dial connects to the first broker that answers, trying each once, from the
// one that worked last; it reports every failure when none does.
func (u *run) dial() (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("jobsd relay " + u.cfg.ID)
	var errs []error
	for i := range u.urls {
		at := (u.broker + i) % len(u.urls)
		conn, err := amqp.DialConfig(u.urls[at], amqp.Config{
			Heartbeat:  heartbeat,
			Locale:     "en_US",
			Properties: props,
			Dial:       amqp.DefaultDial(dialTimeout),
		})
		if err == nil {
			u.broker = at
			return conn, nil
		}
		if len(u.urls) == 1 {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", RedactURL(u.urls[at]), err))
	}
	return nil, errors.Join(errs...)
}

// serveConnection runs publishing sessions on conn, one channel at a time:
// when the broker closes the channel over one message (a channel error), the
// unconfirmed messages are published again one by one on a new channel to
// find the culprit. It returns when the connection is lost or ctx is done,
// with the suspects to isolate on the next connection, if any.
func (u *run) serveConnection(conn *amqp.Connection, b *backoff, suspects []*row) ([]*row, error) {
	g := u.watchBlocked(conn)
	defer g.set(false, "")
	for {
		s, err := u.openSession(conn)
		if err != nil {
			u.release(suspects...)
			return nil, err
		}
		s.gate, s.frameMax, s.backoff = g, conn.Config.FrameSize, b
		u.setConnected(true)
		out := s.serve(suspects)
		suspects = nil
		if out.connLost || u.ctx.Err() != nil {
			if out.err == nil {
				out.err = errors.New("connection closed")
			}
			if u.ctx.Err() == nil && contentError(out.err) && len(out.unconfirmed) > 0 {
				u.log.Warn("broker closed the connection over a message; publishing the unconfirmed ones one at a time to find it",
					"err", out.err, "unconfirmed", len(out.unconfirmed))
				return out.unconfirmed, out.err
			}
			u.release(out.unconfirmed...)
			return nil, out.err
		}
		u.setConnected(false)
		u.log.Warn("broker closed the channel; reopening it", "err", out.err, "unconfirmed", len(out.unconfirmed))
		suspects = out.unconfirmed
	}
}

// watchBlocked follows the connection's connection.blocked and unblocked
// notifications until it closes.
func (u *run) watchBlocked(conn *amqp.Connection) *gate {
	g := &gate{relay: u.Relay}
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	go func() {
		for bl := range blocked { // closed with the connection
			g.set(bl.Active, bl.Reason)
		}
	}()
	return g
}

// gate is a connection's blocked state: while the broker blocks publishing,
// the claimer claims nothing and the publisher waits.
type gate struct {
	relay *Relay
	mu    sync.Mutex
	open  chan struct{} // nil when not blocked; closed when unblocked
	n     uint64        // times blocked
}

func (g *gate) set(blocked bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case blocked && g.open == nil:
		g.open = make(chan struct{})
		g.n++
		g.relay.blocked.Store(true)
		g.relay.log.Warn("the broker blocks publishing (resource alarm: memory or disk); claims pause, rows wait", "reason", reason)
	case !blocked && g.open != nil:
		close(g.open)
		g.open = nil
		if g.relay.blocked.Swap(false) && reason == "" {
			g.relay.log.Info("the broker accepts publishing again")
		}
	}
}

// wait returns nil when publishing is not blocked, else a channel closed
// when it no longer is.
func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		return nil
	}
	return g.open
}

// seq counts the times the broker blocked publishing on this connection.
func (g *gate) seq() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// openSession declares the exchange and opens a channel in confirm mode.
func (u *run) openSession(conn *amqp.Connection) (*session, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if ch, err = u.declareExchange(conn, ch); err != nil {
		return nil, fmt.Errorf("declare exchange %q: %w (the relay needs a durable %s exchange: "+
			"delete the existing one or pick another with --exchange)", u.cfg.Exchange, err, u.cfg.ExchangeType)
	}
	s := &session{
		run:      u,
		conn:     conn,
		ch:       ch,
		closes:   ch.NotifyClose(make(chan *amqp.Error, 1)),
		inflight: make(chan inflight, u.cfg.Window),
	}
	if u.cfg.Mandatory {
		s.returns = ch.NotifyReturn(make(chan amqp.Return, u.cfg.Window+1))
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return s, nil
}

func (u *run) setConnected(on bool) {
	if u.connected.Swap(on) != on {
		u.metrics.setConnected(on)
		if on {
			u.log.Info("broker connected", "broker", RedactURL(u.urls[u.broker]))
		}
	}
}

// backoff is a capped exponential backoff with ±25% jitter.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return time.Duration(float64(b.cur) * (0.75 + rand.Float64()/2))
}

func (b *backoff) reset() { b.cur = 0 }
