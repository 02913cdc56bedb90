package testbroker

import (
	"net"
	"strings"
	"sync"
)

// Proxy forwards TCP connections to the broker until Cut. Point the code under
// test at Proxy.URL to be able to take its broker away mid-stream, or to make
// it stop answering (Stall).
type Proxy struct {
	URL string // the broker URL, with host:port replaced by the proxy's

	ln       net.Listener
	upstream string

	mu      sync.Mutex
	conns   []net.Conn
	refused bool
	resume  chan struct{} // not nil while stalled; closed by Resume
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
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst until either fails. While the proxy is stalled it
// neither reads nor writes, so the peers' TCP buffers fill up.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		p.waitResumed()
		n, err := src.Read(buf)
		if n > 0 {
			p.waitResumed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) waitResumed() {
	p.mu.Lock()
	resume := p.resume
	p.mu.Unlock()
	if resume != nil {
		<-resume
	}
}

// Cut closes every open connection through the proxy and ends a stall. New
// connections are still accepted unless Refuse(true) was called.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
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
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
	p.mu.Unlock()
}
