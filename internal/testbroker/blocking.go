package testbroker

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
)

// BlockingProxy forwards AMQP connections to the broker and can act as a
// broker under a resource alarm: Block sends connection.blocked to every
// client and stops reading what they send (as RabbitMQ does with publishing
// connections); Unblock sends connection.unblocked and reads again. It reads
// the broker's side frame by frame so that it can insert its own frames
// between them.
type BlockingProxy struct {
	URL string // the broker URL, with host:port replaced by the proxy's

	ln       net.Listener
	upstream string

	mu      sync.Mutex
	clients []*blockedClient
	open    chan struct{} // closed while not blocked
}

type blockedClient struct {
	conn    net.Conn
	writeMu sync.Mutex // one frame at a time towards the client
}

// NewBlockingProxy starts a proxy to the test's broker; it stops when t ends.
func (b *Broker) NewBlockingProxy() *BlockingProxy {
	b.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Fatalf("testbroker: proxy listen: %v", err)
	}
	up := hostPort(b.URL)
	p := &BlockingProxy{URL: strings.Replace(b.URL, up, ln.Addr().String(), 1), ln: ln, upstream: up, open: make(chan struct{})}
	close(p.open)
	go p.accept()
	b.t.Cleanup(func() {
		_ = ln.Close()
		p.Unblock()
		p.mu.Lock()
		for _, c := range p.clients {
			_ = c.conn.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *BlockingProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		bc := &blockedClient{conn: c}
		p.mu.Lock()
		p.clients = append(p.clients, bc)
		p.mu.Unlock()
		go p.up(up, c)
		go down(bc, up)
	}
}

// up copies the client's bytes to the broker, reading nothing while blocked.
func (p *BlockingProxy) up(broker, client net.Conn) {
	defer broker.Close()
	defer client.Close()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		open := p.open
		p.mu.Unlock()
		<-open
		n, err := client.Read(buf)
		if n > 0 {
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
func down(c *blockedClient, broker net.Conn) {
	defer broker.Close()
	defer c.conn.Close()
	r := bufio.NewReader(broker)
	header := make([]byte, 7) // type, channel, size
	for {
		if _, err := io.ReadFull(r, header); err != nil {
			return
		}
		rest := make([]byte, binary.BigEndian.Uint32(header[3:])+1) // payload and frame end
		if _, err := io.ReadFull(r, rest); err != nil {
			return
		}
		if err := c.write(append(append([]byte{}, header...), rest...)); err != nil {
			return
		}
	}
}

func (c *blockedClient) write(frame []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, err := c.conn.Write(frame)
	return err
}

// connectionFrame is a method frame on channel 0 of class connection (10).
func connectionFrame(method uint16, args []byte) []byte {
	payload := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 10), method)
	payload = append(payload, args...)
	f := []byte{1, 0, 0}
	f = binary.BigEndian.AppendUint32(f, uint32(len(payload)))
	return append(append(f, payload...), 0xCE)
}

// Block sends connection.blocked with reason to every client and stops
// reading from them.
func (p *BlockingProxy) Block(reason string) {
	p.stop(connectionFrame(60, append([]byte{byte(len(reason))}, reason...)))
}

// Stall stops reading from the clients without telling them: a broker that
// hangs.
func (p *BlockingProxy) Stall() { p.stop(nil) }

func (p *BlockingProxy) stop(frame []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
		return
	}
	for _, c := range p.clients {
		if frame != nil {
			_ = c.write(frame)
		}
	}
}

// Unblock sends connection.unblocked to every client and reads from them again.
func (p *BlockingProxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		return
	default:
	}
	close(p.open)
	frame := connectionFrame(61, nil)
	for _, c := range p.clients {
		_ = c.write(frame)
	}
}
