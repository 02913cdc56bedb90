package relay

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	beginSQL            = jsql.Statement("relay_begin")
	commitSQL           = jsql.Statement("relay_commit")
	rollbackSQL         = jsql.Statement("relay_rollback")
	settingsSQL         = jsql.Statement("relay_settings")
	claimCandidatesSQL  = jsql.Statement("relay_claim_candidates")
	claimLeaseSQL       = jsql.Statement("relay_claim_lease")
	releaseUncertainSQL = jsql.Statement("relay_release_uncertain")
	takeoverSQL         = jsql.Statement("relay_takeover")
	takeoverWaitingSQL  = jsql.Statement("relay_takeover_waiting")
	waitSQL             = jsql.Statement("relay_wait")
	unwaitSQL           = jsql.Statement("relay_unwait")
	quietSQL            = jsql.Statement("relay_quiet")
)

// quietRetry is how soon a relay that registered as waiting looks again
// whether writers that may have missed its registration have committed.
const quietRetry = 5 * time.Millisecond

// waitRefresh is how often a waiting relay refreshes its outbox_relay_waiting
// row (rows not refreshed for 10 minutes are dropped as a dead relay's).
const waitRefresh = 2 * time.Minute

// dbTimeout bounds one statement of the claimer or the marker.
const dbTimeout = 30 * time.Second

// claimLoop claims batches for the publisher and writes failures and
// releases. Doing both in one goroutine orders them: a claim that starts after
// a failure or release was written sees it, which is what batch.epoch relies on.
//
// With LISTEN on, writers notify only while a relay waits (see
// migration 006). When a claim finds nothing, the claimer registers as
// waiting, waits until every writer that may have looked before it
// registered has committed, claims once more, and waits. While
// notifications come faster than it claims (two or more per claim), it
// unregisters and claims again as long as claims find rows: under load
// writers send no NOTIFY, and at low rates the relay stays registered and
// each notification costs one claim, no extra write.
func (u *run) claimLoop() {
	db := context.WithoutCancel(u.ctx)
	ticker := time.NewTicker(u.cfg.PollInterval)
	defer ticker.Stop()
	u.takeover(db)
	want := true
	busy := false              // claiming without notifications while claims find rows
	var waitingSince time.Time // zero: not registered as waiting
	quiet := false             // registered, and claimed once more after the writers that missed it
	// retry fires when the keys a fruitless claim skipped may be free again
	// (another relay's batch confirmed), or when to look again whether the
	// writers are quiet: without it, relays that hold each other's keys
	// could all wait for the next poll.
	var retry <-chan time.Time
	for {
		if u.writeFailuresAndReleases(db) {
			want = true // released rows can be claimed again at once
		}
		if want && u.ctx.Err() == nil && u.sessionUp.Load() && u.prefetch.Load() && !u.blocked.Load() {
			before := u.notified.Load()
			claimed, more, err := u.claim(db)
			if err != nil {
				u.claimErrors.log(u.log, "claim failed; retrying at the next poll", "err", err, "poll", u.cfg.PollInterval)
			} else {
				u.claimErrors.reset()
			}
			want = more
			switch {
			case claimed == 0:
				busy = false
			case !waitingSince.IsZero() && u.notified.Load()-before >= 2:
				if u.setWaiting(db, false) {
					waitingSince, quiet = time.Time{}, false
					busy = true
				}
			}
			want = want || (busy && claimed > 0)
			if at, ok := u.skipKeys.earliest(); ok && claimed == 0 && err == nil {
				retry = time.After(time.Until(at))
			}
			continue
		}
		if !want && !u.cfg.PollOnly && u.ctx.Err() == nil && u.sessionUp.Load() {
			switch {
			case waitingSince.IsZero() || time.Since(waitingSince) > waitRefresh:
				if u.setWaiting(db, true) {
					waitingSince, quiet = time.Now(), false
					continue
				}
			case !quiet:
				if u.writersQuiet(db) {
					quiet, want = true, true // claim once more: what missed the registration is committed
					continue
				}
				if retry == nil {
					retry = time.After(quietRetry)
				}
			}
		}
		select {
		case <-u.stop:
			select {
			case b := <-u.batches:
				u.release(b.rows...)
			default:
			}
			ctx, cancel := context.WithTimeout(db, finalFlushTimeout)
			u.writeFailuresAndReleases(ctx)
			if !waitingSince.IsZero() {
				u.setWaitingCtx(ctx, false)
			}
			cancel()
			return
		case <-u.wantClaim:
			want = true
		case <-ticker.C:
			want = true
		case <-retry:
			retry, want = nil, true
		case <-u.kick:
		}
	}
}

// writersQuiet reports whether no writer holds the shared notify lock: every
// writer that looked at outbox_relay_waiting before this run registered has
// committed (see migration 006).
func (u *run) writersQuiet(db context.Context) bool {
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	var quiet bool
	if err := u.db.QueryRow(ctx, quietSQL).Scan(&quiet); err != nil {
		u.log.Debug("cannot check the notify lock", "err", err)
		return false
	}
	return quiet
}

// setWaiting registers this run as waiting for notifications, or no longer;
// it reports whether the database took it.
func (u *run) setWaiting(db context.Context, on bool) bool {
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	return u.setWaitingCtx(ctx, on)
}

func (u *run) setWaitingCtx(ctx context.Context, on bool) bool {
	stmt := unwaitSQL
	if on {
		stmt = waitSQL
	}
	if _, err := u.db.Exec(ctx, stmt, u.holder); err != nil {
		u.log.Debug("cannot register as waiting for notifications", "waiting", on, "err", err)
		return false
	}
	return true
}

// takeover gives back the leases of an earlier run with this relay's ID (see
// sql/app/relay_takeover.sql). A failure only delays those rows until their
// lease ends.
func (u *run) takeover(db context.Context) {
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	tag, err := u.db.Exec(ctx, takeoverSQL, u.cfg.ID, u.holder)
	if err != nil {
		u.log.Warn("cannot take back the leases of an earlier run with this relay id; they are claimed when their lease ends",
			"lease", u.cfg.Lease, "err", err)
		return
	}
	if n := tag.RowsAffected(); n > 0 {
		u.log.Info("took back rows an earlier run with this relay id had leased", "rows", n)
	}
	if _, err := u.db.Exec(ctx, takeoverWaitingSQL, u.cfg.ID); err != nil {
		u.log.Debug("cannot drop the waiting row of an earlier run with this relay id", "err", err)
	}
}

// claim takes one batch and hands it to the publisher. It reports how many
// rows it claimed and whether to claim again at once: the candidates filled a
// whole batch, so more rows likely wait, and the claim made progress.
func (u *run) claim(db context.Context) (int, bool, error) {
	// A claim must see every failure and release recorded before its epoch:
	// a row given back but not yet written still looks leased. fail and
	// release record the row before they change the epoch, so checking after
	// loading it is enough. Rows of a key that fails later are dropped by
	// the publisher (see batch.epoch).
	epoch := u.epoch.Load()
	for u.pendingWrites() {
		u.writeFailuresAndReleases(db)
		if u.pendingWrites() {
			return 0, false, errors.New("failures or releases could not be written")
		}
		epoch = u.epoch.Load()
	}
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	start := time.Now()
	c, err := u.claimTx(ctx, start, u.skipKeys.keys(start), u.heldRuns())
	if err != nil {
		return 0, false, err
	}
	added := u.skipKeys.add(c.blocked, start.Add(blockedKeyTTL(u.cfg.PollInterval)))
	more := c.candidates == u.cfg.BatchSize && (len(c.rows) > 0 || added > 0)
	if len(c.rows) == 0 {
		return 0, more, nil
	}
	slices.SortFunc(c.rows, func(a, b *row) int { return cmp.Compare(a.ID, b.ID) })
	u.hold(c.rows)
	u.log.Debug("claimed", "rows", len(c.rows), "candidates", c.candidates, "blocked_keys", len(c.blocked), "took", time.Since(start))
	if u.ctx.Err() != nil {
		u.release(c.rows...)
		return 0, false, nil
	}
	// Publish well before the lease ends, so that no other relay takes the
	// rows while this one still publishes them.
	margin := min(u.cfg.Lease/2, 5*time.Second)
	publishBy := start.Add(u.cfg.Lease - margin)
	for _, rw := range c.rows {
		rw.publishBy = publishBy
	}
	u.prefetch.Store(false)
	u.batches <- &batch{rows: c.rows, epoch: epoch, publishBy: publishBy}
	return len(c.rows), more, nil
}

type claimResult struct {
	rows       []*row
	candidates int      // rows locked in step 1
	blocked    []string // keys whose candidates stopped at a barrier
}

// claimTx runs a claim as one transaction in two round trips: begin and
// lock the candidates; then lease the claimable ones and commit. after is,
// per key, the last row this run holds (see heldRuns).
//
// When the second round trip fails, the claim's outcome is unknown (the
// COMMIT may have been applied): its rows are queued to be given back before
// the next claim. Until then they only block their keys, since nothing here
// knows them as held.
func (u *run) claimTx(ctx context.Context, start time.Time, skip []string, after map[string]int64) (c claimResult, err error) {
	conn, err := u.db.Acquire(ctx)
	if err != nil {
		return c, err
	}
	defer conn.Release()
	done := false
	defer func() {
		if !done {
			// Ends the transaction; a connection that cannot is not reused
			// by the pool (it is not idle).
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, rollbackSQL)
		}
	}()

	b := &pgx.Batch{}
	b.Queue(beginSQL)
	b.Queue(settingsSQL)
	heldKeys := make([]string, 0, len(after))
	heldLast := make([]int64, 0, len(after))
	for k, id := range after {
		heldKeys, heldLast = append(heldKeys, k), append(heldLast, id)
	}
	b.Queue(claimCandidatesSQL, u.cfg.BatchSize, skip, heldKeys, heldLast)
	res := conn.SendBatch(ctx, b)
	_, err = res.Exec()
	if err == nil {
		_, err = res.Exec()
	}
	var cands, keyRows []keyRow
	if err == nil {
		rows, _ := res.Query()
		var kr keyRow
		var candidate bool
		_, err = pgx.ForEachRow(rows, []any{&kr.Key, &kr.ID, &candidate}, func() error {
			if candidate {
				cands = append(cands, kr)
			} else {
				keyRows = append(keyRows, kr)
			}
			return nil
		})
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	c.candidates = len(cands)
	if err != nil || len(cands) == 0 {
		return c, err
	}
	slices.SortFunc(cands, func(a, b keyRow) int { return cmp.Compare(a.ID, b.ID) })
	var ids []int64
	ids, c.blocked = claimable(cands, keyRows, after)
	if len(ids) == 0 || u.blocked.Load() {
		// Nothing to claim, or the broker started blocking publishing
		// while the candidates were being chosen: lease nothing.
		return c, nil
	}

	b = &pgx.Batch{}
	b.Queue(claimLeaseSQL, u.holder, ids, millis(u.cfg.Lease))
	b.Queue(commitSQL)
	res = conn.SendBatch(ctx, b)
	rows, _ := res.Query()
	c.rows, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*row, error) {
		rw := &row{claimedAt: start}
		var attempt int32
		err := r.Scan(&rw.ID, &rw.MessageID, &rw.Topic, &rw.Key, &rw.Payload, &rw.ContentType, &rw.Headers, &rw.CreatedAt, &attempt)
		rw.Attempt = int(attempt)
		return rw, err
	})
	if err == nil {
		_, err = res.Exec()
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		u.releaseUncertain(ids)
		return claimResult{}, err
	}
	done = true
	return c, nil
}

// keyRow is an outbox row's key and id.
type keyRow struct {
	Key string
	ID  int64
}

// claimable returns the ids of the candidates that may be claimed, and the
// keys that have candidates it may not claim. keyRows are, per candidate
// key, the key's pending rows after the last row this run holds of that key
// (after; none: from the key's first pending row) up to its last candidate.
// A candidate is claimable when no such row of its key with a smaller id is
// missing from the candidates: that row is leased by another relay or an
// earlier run, backing off, or being claimed by another relay right now, and
// the candidate must not overtake it. A candidate at or before after (a held
// row whose lease ran out) blocks its key. The empty key is never blocked.
func claimable(cands, keyRows []keyRow, after map[string]int64) (ids []int64, blocked []string) {
	isCand := make(map[int64]bool, len(cands))
	for _, c := range cands {
		isCand[c.ID] = true
	}
	barrier := map[string]int64{}
	setBarrier := func(key string, id int64) {
		if b, ok := barrier[key]; !ok || id < b {
			barrier[key] = id
		}
	}
	for _, kr := range keyRows {
		if kr.Key != "" && !isCand[kr.ID] {
			setBarrier(kr.Key, kr.ID)
		}
	}
	for _, c := range cands {
		if a, ok := after[c.Key]; ok && c.Key != "" && c.ID <= a {
			setBarrier(c.Key, c.ID)
		}
	}
	ids = make([]int64, 0, len(cands))
	for _, c := range cands {
		if b, ok := barrier[c.Key]; c.Key == "" || !ok || c.ID < b {
			ids = append(ids, c.ID)
		}
	}
	for k := range barrier {
		blocked = append(blocked, k)
	}
	return ids, blocked
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
