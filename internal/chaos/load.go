package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/outbox"
)

// OrderTopic is the topic of the events the load writes itself, several per
// key with increasing sequence numbers, to check per-key order.
const OrderTopic = "chaos.order"

// orderKeys is how many keys the ordered events use.
const orderKeys = 8

// signupSenders bounds the signups in flight at once.
const signupSenders = 32

// load sends signups over HTTP to the serve processes at a steady rate, and
// writes ordered events straight into the outbox (the library path), until
// stopped.
type load struct {
	serves []string // host:port of each serve
	pool   *pgxpool.Pool
	prefix string // makes emails unique per scenario
	rate   atomic.Int64

	client *http.Client

	sent, refused, failed, noRetryAfter atomic.Int64
	mu                                  sync.Mutex
	acked                               []string // emails whose signup answered 201
	ordered                             int64    // ordered events committed
	wg                                  sync.WaitGroup
}

type orderPayload struct {
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

func newLoad(serves []string, pool *pgxpool.Pool, prefix string, rate int) *load {
	l := &load{serves: serves, pool: pool, prefix: prefix,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: signupSenders}}}
	l.rate.Store(int64(rate))
	return l
}

// run sends until ctx ends; it returns at once, wait waits for the senders.
func (l *load) run(ctx context.Context) {
	l.wg.Go(func() { l.signups(ctx) })
	for k := range orderKeys {
		l.wg.Go(func() { l.orderedEvents(ctx, fmt.Sprintf("order-%d", k)) })
	}
}

func (l *load) wait() { l.wg.Wait() }

// setRate changes the signups per second.
func (l *load) setRate(r int) { l.rate.Store(int64(r)) }

func (l *load) signups(ctx context.Context) {
	slots := make(chan struct{}, signupSenders)
	var n int64
	next := time.Now()
	for ctx.Err() == nil {
		next = next.Add(time.Second / time.Duration(max(1, l.rate.Load())))
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		} else if d < -time.Second {
			next = time.Now() // do not burst to catch up after a stall
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n++
		email := fmt.Sprintf("%s-%d@chaos.test", l.prefix, n)
		target := l.serves[n%int64(len(l.serves))]
		l.wg.Go(func() {
			defer func() { <-slots }()
			l.signup(target, email)
		})
	}
}

// signup posts one signup. It is not cancelled with the load: a request in
// flight gets its answer, so that "acknowledged" is exact.
func (l *load) signup(target, email string) {
	l.sent.Add(1)
	body, _ := json.Marshal(map[string]string{"email": email, "name": "chaos"})
	resp, err := l.client.Post("http://"+target+"/signup", "application/json", bytes.NewReader(body))
	if err != nil {
		l.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		l.mu.Lock()
		l.acked = append(l.acked, email)
		l.mu.Unlock()
	case http.StatusServiceUnavailable:
		l.refused.Add(1)
		if resp.Header.Get("Retry-After") == "" {
			l.noRetryAfter.Add(1)
		}
	default:
		l.failed.Add(1)
	}
}

// orderedEvents writes events of one key, sequence numbers increasing, each
// in its own transaction, about ten a second. A write that fails is not
// retried with the same number: the numbers of committed events increase, gaps
// are allowed.
func (l *load) orderedEvents(ctx context.Context, key string) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for seq := int64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := pgx.BeginFunc(wctx, l.pool, func(tx pgx.Tx) error {
			return outbox.Write(wctx, tx, outbox.Event{Topic: OrderTopic, Key: key, Payload: orderPayload{key, seq}})
		})
		cancel()
		if err == nil {
			l.mu.Lock()
			l.ordered++
			l.mu.Unlock()
		}
	}
}

// ackedEmails returns the emails of the acknowledged signups.
func (l *load) ackedEmails() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}
