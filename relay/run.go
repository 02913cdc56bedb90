package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	Payload   []byte // the body to publish, exactly (outbox_event.body, or payload::text)
	// ContentType is the body's content type (application/json when the row has none).
	ContentType string
	Headers     []byte
	CreatedAt   time.Time
	Attempt     int

	claimedAt time.Time // when the claim started (for the duration metric)
	publishBy time.Time // the batch's publishBy
}

// batch is the result of one claim, in id order.
type batch struct {
	rows []*row
	// epoch is run.epoch when the claim started. A row of the batch whose
	// key had a row fail or be released after that (run.keyEpoch) may have
	// to wait for that row: the publisher releases it instead of publishing
	// it. Rows of other keys are published.
	epoch uint64
	// publishBy is the last moment rows of the batch may be published: well
	// before the lease ends, so that no other relay publishes them at the same
	// time.
	publishBy time.Time
}

// failure is a row the broker refused (nack, return, channel error) or that
// could not be turned into a message.
type failure struct {
	row       *row
	reason    string
	permanent bool // the row can never be sent: dead at once
}

// heldKey is what a run holds of one key: rows it leased and has not yet
// written back (marked, failed or released).
type heldKey struct {
	n     int   // rows held
	last  int64 // the largest id held
	dirty bool  // a row of the key failed or was released while others are held
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

	// holder is written to outbox_event.claimed_by: the relay ID and a
	// random token of this run, so that a restart with the same ID does not
	// mistake the earlier run's leases for its own.
	holder string

	// broker is the index in urls of the broker connected last; brokerLoop
	// only (setConnected reads it after a dial).
	broker int

	ctx  context.Context // done when Run's ctx is done
	stop chan struct{}   // closed once the broker side has stopped for good

	// epoch counts rows leaving the pipeline other than by being confirmed
	// (failed or released); see batch.epoch.
	epoch atomic.Uint64

	skipKeys    blockedKeys // claimer only
	claimErrors repeatLog   // claimer only

	sessionUp atomic.Bool // a channel is open and a publisher waits for batches
	batches   chan *batch // claimLoop -> publisher; capacity 1 (one batch prefetched)
	// prefetch is true when the claimer may claim the next batch: the
	// publisher has taken the previous one.
	prefetch  atomic.Bool
	wantClaim chan struct{} // a claim would likely find rows (notify, session up)
	notified  atomic.Int64  // notifications received
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
	uncertain []int64             // rows of claims with an unknown outcome, to give back
	keyEpoch  map[string]uint64   // per key, the epoch of its last failed or released row
	held      map[string]*heldKey // per key, what this run holds
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
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	u := &run{
		Relay:     r,
		db:        db,
		holder:    r.cfg.ID + "/" + hex.EncodeToString(token),
		keyEpoch:  map[string]uint64{},
		held:      map[string]*heldKey{},
		skipKeys:  blockedKeys{},
		ctx:       ctx,
		stop:      make(chan struct{}),
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
	return len(u.failed) > 0 || len(u.released) > 0 || len(u.uncertain) > 0
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// hold records freshly claimed rows as held by this run.
func (u *run) hold(rows []*row) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, rw := range rows {
		h := u.held[rw.Key]
		if h == nil {
			h = &heldKey{}
			u.held[rw.Key] = h
		}
		h.n++
		h.last = max(h.last, rw.ID)
	}
}

// unhold forgets rows once their outcome is written to the database.
func (u *run) unhold(rows []*row) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, rw := range rows {
		if h := u.held[rw.Key]; h != nil {
			if h.n--; h.n <= 0 {
				delete(u.held, rw.Key)
			}
		}
	}
}

// heldRuns returns, per key this run holds rows of, the last row it holds:
// the next claim continues each key after it. Keys where a row failed or was
// released are left out: their next claim starts at the key's first pending
// row, which this run's own rows then block until they are written back.
func (u *run) heldRuns() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	after := make(map[string]int64, len(u.held))
	for k, h := range u.held {
		if k != "" && !h.dirty {
			after[k] = h.last
		}
	}
	return after
}

// leaves records that rw leaves the pipeline unconfirmed: later rows of its
// key in batches claimed before now must not be published before it.
// Called with u.mu held.
func (u *run) leaves(rw *row) {
	e := u.epoch.Add(1)
	if rw.Key == "" {
		return
	}
	u.keyEpoch[rw.Key] = e
	if h := u.held[rw.Key]; h != nil {
		h.dirty = true
	}
}

// barred reports whether rw, of a batch claimed at epoch, must be released
// instead of published: a row of its key failed or was released since.
func (u *run) barred(rw *row, epoch uint64) bool {
	if rw.Key == "" {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.keyEpoch[rw.Key] > epoch
}

// forgetBarriers drops the per-key epochs no batch from epoch on can be
// affected by. The publisher calls it as it starts a batch: batches are
// published in claim order, and epochs only grow.
func (u *run) forgetBarriers(epoch uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, e := range u.keyEpoch {
		if e <= epoch {
			delete(u.keyEpoch, k)
		}
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
func (u *run) fail(rw *row, reason string) { u.failRow(rw, reason, false) }

// failRow records a failed row; permanent makes it dead at once.
func (u *run) failRow(rw *row, reason string, permanent bool) {
	u.failRowContext(context.Background(), rw, reason, permanent)
}

// failRowContext is failRow logging with ctx (the row's publish span, if
// any: see trace.go).
func (u *run) failRowContext(ctx context.Context, rw *row, reason string, permanent bool) {
	u.log.WarnContext(ctx, "publish failed", "event_id", rw.ID, "message_id", rw.MessageID, "key", rw.Key, "attempt", rw.Attempt+1, "permanent", permanent, "err", reason)
	u.mu.Lock()
	u.failed = append(u.failed, failure{row: rw, reason: reason, permanent: permanent})
	u.leaves(rw)
	u.mu.Unlock()
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
	for _, rw := range rows {
		u.leaves(rw)
	}
	u.mu.Unlock()
	signal(u.kick)
}

// releaseUncertain queues the rows of a claim whose outcome is unknown to be
// given back (they were never held).
func (u *run) releaseUncertain(ids []int64) {
	u.mu.Lock()
	u.uncertain = append(u.uncertain, ids...)
	u.mu.Unlock()
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
