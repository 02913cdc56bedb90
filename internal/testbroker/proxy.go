package testbroker

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
)

// Proxy forwards AMQP connections to the broker until Cut. Point the code
// under test at Proxy.URL to be able to take its broker away mid-stream, to
// make it stop answering (Stall), or to make it act as a broker under a
// resource alarm (Block). It reads the broker's side frame by frame, so that
// it can insert frames of its own between them.
type Proxy struct {
	URL string // the broker URL, with host:port replaced by the proxy's

	ln       net.Listener
	upstream string

	mu      sync.Mutex
	conns   []net.Conn
	clients []*client
	refused bool
	resume  chan struct{} // not nil while stalled; closed by Resume
	unblock chan struct{} // not nil while blocked; closed by Unblock
}

// client is a connection to the code under test; frames towards it are
// written one at a time.
type client struct {
	conn net.Conn
	mu   sync.Mutex
}

func (c *client) write(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.conn.Write(frame)
	return err
}

// NewProxy starts a proxy to the test's broker; it stops when t ends.
func (b *Broker) NewProxy() *Proxy {
	b.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Fatalf("testbroker: proxy listen: %v", err)
	}
	up := hostPort(b.URL)
	p := &Proxy{URL: strings.Replace(b.URL, up, ln.Addr().String(), 1), ln: ln, upstream: up}
	go p.accept()
	b.t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refused := p.refused
		p.mu.Unlock()
		if refused {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		cl := &client{conn: c}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.clients = append(p.clients, cl)
		p.mu.Unlock()
		go p.up(up, c)
		go p.down(cl, up)
	}
}

// up copies what the client sends to the broker. While the proxy is stalled
// or blocked it reads nothing, so the client's writes block once the TCP
// buffers are full.
func (p *Proxy) up(broker, c net.Conn) {
	defer func() { _ = broker.Close(); _ = c.Close() }()
	buf := make([]byte, 32<<10)
	for {
		p.waitResumed()
		p.waitUnblocked()
		n, err := c.Read(buf)
		if n > 0 {
			p.waitResumed()
			if _, werr := broker.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down copies the broker's frames to the client, whole frames at a time.
// While the proxy is stalled it neither reads nor writes.
func (p *Proxy) down(c *client, broker net.Conn) {
	defer func() { _ = broker.Close(); _ = c.conn.Close() }()
	r := bufio.NewReader(broker)
	header := make([]byte, 7) // type, channel, size
	for {
		p.waitResumed()
		if _, err := io.ReadFull(r, header); err != nil {
			return
		}
		frame := make([]byte, 7+binary.BigEndian.Uint32(header[3:])+1) // payload and frame end
		copy(frame, header)
		if _, err := io.ReadFull(r, frame[7:]); err != nil {
			return
		}
		p.waitResumed()
		if err := c.write(frame); err != nil {
			return
		}
	}
}

func (p *Proxy) waitResumed() { p.waitOpen(func() chan struct{} { return p.resume }) }

func (p *Proxy) waitUnblocked() { p.waitOpen(func() chan struct{} { return p.unblock }) }

// waitOpen waits until the channel that gate returns (under p.mu) is nil or
// closed.
func (p *Proxy) waitOpen(gate func() chan struct{}) {
	p.mu.Lock()
	ch := gate()
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Cut closes every open connection through the proxy and ends a stall or a
// block. New connections are still accepted unless Refuse(true) was called.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns, p.clients = nil, nil
	p.resume = reopen(p.resume)
	p.unblock = reopen(p.unblock)
}

// reopen closes a non-nil gate channel and returns nil.
func reopen(ch chan struct{}) chan struct{} {
	if ch != nil {
		close(ch)
	}
	return nil
}

// Refuse makes the proxy close new connections at once (broker "down") when
// on is true, and accept them again when false.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refused = on
	p.mu.Unlock()
}

// Stall makes the proxy stop forwarding in both directions without closing
// anything: the connections stay open, nothing more is read from either side
// (their writes block once the TCP buffers are full), nothing is delivered.
// That is what a broker that stopped answering looks like to the client. New
// connections are accepted and stall too. Resume or Cut ends the stall.
func (p *Proxy) Stall() {
	p.mu.Lock()
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
}

// Resume forwards again after Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.resume = reopen(p.resume)
	p.mu.Unlock()
}

// Block acts as a broker under a resource alarm: it sends connection.blocked
// with reason to every client and stops reading what they send (RabbitMQ
// does so with publishing connections), while the broker's frames still
// reach them. Unblock or Cut ends it.
func (p *Proxy) Block(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unblock != nil {
		return
	}
	p.unblock = make(chan struct{})
	frame := connectionFrame(60, append([]byte{byte(len(reason))}, reason...))
	for _, c := range p.clients {
		_ = c.write(frame)
	}
}

// Unblock sends connection.unblocked to every client and reads from them again.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unblock == nil {
		return
	}
	p.unblock = reopen(p.unblock)
	frame := connectionFrame(61, nil)
	for _, c := range p.clients {
		_ = c.write(frame)
	}
}

// connectionFrame is a method frame on channel 0 of class connection (10).
func connectionFrame(method uint16, args []byte) []byte {
	payload := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 10), method)
	payload = append(payload, args...)
	f := []byte{1, 0, 0}
	f = binary.BigEndian.AppendUint32(f, uint32(len(payload)))
	return append(append(f, payload...), 0xCE)
}
