package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// row is one claimed outbox_event row.
type row struct {
	ID        int64
	MessageID string
	Topic     string
	Key       string
	Payload   []byte
	Headers   []byte
	CreatedAt time.Time
	Attempt   int

	claimedAt time.Time // when the claim started (for the duration metric)
}

// batch is the result of one claim, in id order.
type batch struct {
	rows []*row
	// epoch is run.epoch when the claim started. A batch whose epoch is no
	// longer current was claimed before some row failed or was released, and
	// may hold rows of that row's key that must not overtake it: the
	// publisher releases it instead of publishing it.
	epoch uint64
	// publishBy is the last moment rows of the batch may be published: well
	// before the lease ends, so that no other relay publishes them at the same
	// time.
	publishBy time.Time
}

// failure is a row the broker refused (nack, return, channel error) or that
// could not be turned into a message.
type failure struct {
	row    *row
	reason string
}

// run is the state of one Relay.Run.
//
// Goroutines: brokerLoop (connections, channels, publisher and confirmer),
// claimLoop (claims, and records failures and releases, serialised with the
// claims), markLoop (marks confirmed rows published), listenLoop and
// retentionLoop.
type run struct {
	*Relay

	// db is the relay's own small pool, made from the caller's pool's
	// configuration, so that application load cannot make claims and marks
	// wait for a connection.
	db *pgxpool.Pool

	ctx  context.Context // done when Run's ctx is done
	stop chan struct{}   // closed once the broker side has stopped for good

	// epoch changes whenever a row leaves the pipeline other than by being
	// confirmed (failed or released); see batch.epoch.
	epoch atomic.Uint64

	blocked blockedKeys // claimer only

	sessionUp atomic.Bool // a channel is open and a publisher waits for batches
	batches   chan *batch // claimLoop -> publisher; capacity 1 (one batch prefetched)
	// prefetch is true when the claimer may claim the next batch: the
	// publisher has taken the previous one and checked that it is not stale.
	prefetch  atomic.Bool
	wantClaim chan struct{} // a claim would likely find rows (notify, session up)
	kick      chan struct{} // failures/releases to write, or the publisher took a batch
	markKick  chan struct{} // confirmed rows to mark
	marked    chan struct{} // the marker finished a round
	// unmarked counts confirmed rows not yet marked published. The publisher
	// pauses while it reaches BatchSize, so that a crash republishes at most
	// BatchSize confirmed rows plus a window of unconfirmed ones.
	unmarked atomic.Int64

	mu        sync.Mutex
	confirmed []*row
	failed    []failure
	released  []*row
}

// relayConns is the size of the relay's own pool: claimer, marker, retention.
const relayConns = 3

func newRun(ctx context.Context, r *Relay) *run {
	db := r.pool
	cfg := r.pool.Config()
	cfg.MaxConns, cfg.MinConns = relayConns, 0
	if own, err := pgxpool.NewWithConfig(ctx, cfg); err == nil {
		db = own
	} else {
		r.cfg.Logger.Warn("relay: cannot open its own connection pool; sharing the application's", "err", err)
	}
	u := &run{
		Relay:     r,
		db:        db,
		ctx:       ctx,
		stop:      make(chan struct{}),
		blocked:   blockedKeys{},
		batches:   make(chan *batch, 1),
		wantClaim: make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		markKick:  make(chan struct{}, 1),
		marked:    make(chan struct{}, 1),
	}
	u.prefetch.Store(true)
	return u
}

// close closes the relay's own pool.
func (u *run) close() {
	if u.db != u.pool {
		u.db.Close()
	}
}

// pendingWrites reports whether failures or releases wait to be written.
func (u *run) pendingWrites() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.failed) > 0 || len(u.released) > 0
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// confirm hands a row the broker acknowledged to the marker.
func (u *run) confirm(rw *row) {
	u.metrics.observeConfirm(time.Since(rw.claimedAt))
	u.unmarked.Add(1)
	u.mu.Lock()
	u.confirmed = append(u.confirmed, rw)
	u.mu.Unlock()
	signal(u.markKick)
}

// fail records a refused row: it is retried after a backoff, or becomes dead.
//
// The row is recorded before the epoch changes: a claim that loads the new
// epoch is then sure to see the row pending and to write it first (see claim).
func (u *run) fail(rw *row, reason string) {
	u.log.Warn("publish failed", "id", rw.ID, "key", rw.Key, "attempt", rw.Attempt+1, "err", reason)
	u.mu.Lock()
	u.failed = append(u.failed, failure{row: rw, reason: reason})
	u.mu.Unlock()
	u.epoch.Add(1)
	signal(u.kick)
}

// release gives rows back unpublished (or published without a confirm), with
// no attempt counted.
func (u *run) release(rows ...*row) {
	if len(rows) == 0 {
		return
	}
	u.mu.Lock()
	u.released = append(u.released, rows...)
	u.mu.Unlock()
	u.epoch.Add(1)
	signal(u.kick)
}

// sleep waits d, or less when ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
