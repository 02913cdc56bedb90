package testbroker

import (
	"io"
	"net"
	"strings"
	"sync"
)

// Proxy forwards TCP connections to the broker until Cut. Point the code under
// test at Proxy.URL to be able to take its broker away mid-stream.
type Proxy struct {
	URL string // the broker URL, with host:port replaced by the proxy's

	ln       net.Listener
	upstream string

	mu      sync.Mutex
	conns   []net.Conn
	refused bool
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
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go pipe(c, up)
		go pipe(up, c)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// Cut closes every open connection through the proxy. New connections are
// still accepted unless Refuse(true) was called.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Refuse makes the proxy close new connections at once (broker "down") when
// on is true, and accept them again when false.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refused = on
	p.mu.Unlock()
}
