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
	beginSQL           = jsql.Statement("relay_begin")
	commitSQL          = jsql.Statement("relay_commit")
	rollbackSQL        = jsql.Statement("relay_rollback")
	settingsSQL        = jsql.Statement("relay_settings")
	claimCandidatesSQL = jsql.Statement("relay_claim_candidates")
	claimLeaseSQL      = jsql.Statement("relay_claim_lease")
)

// dbTimeout bounds one statement of the claimer or the marker.
const dbTimeout = 30 * time.Second

// claimLoop claims batches for the publisher and writes failures and
// releases. Doing both in one goroutine orders them: a claim that starts after
// a failure or release was written sees it, which is what batch.epoch relies on.
func (u *run) claimLoop() {
	db := context.WithoutCancel(u.ctx)
	ticker := time.NewTicker(u.cfg.PollInterval)
	defer ticker.Stop()
	want := true
	for {
		if u.writeFailuresAndReleases(db) {
			want = true // released rows can be claimed again at once
		}
		if want && u.ctx.Err() == nil && u.sessionUp.Load() && u.prefetch.Load() {
			full, err := u.claim(db)
			if err != nil {
				u.log.Warn("claim failed; retrying at the next poll", "err", err, "poll", u.cfg.PollInterval)
			}
			want = full // a full window of candidates: there is likely more
			continue
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
			cancel()
			return
		case <-u.wantClaim:
			want = true
		case <-ticker.C:
			want = true
		case <-u.kick:
		}
	}
}

// claim takes one batch and hands it to the publisher. It reports whether
// the candidates filled a whole batch (so that more rows likely wait).
func (u *run) claim(db context.Context) (bool, error) {
	// A claim must see every failure and release recorded before its epoch:
	// a row given back but not yet written still looks leased by this relay
	// and would not stop later rows of its key. fail and release record the
	// row before they change the epoch, so checking after loading it is enough.
	epoch := u.epoch.Load()
	for u.pendingWrites() {
		u.writeFailuresAndReleases(db)
		if u.pendingWrites() {
			return false, errors.New("failures or releases could not be written")
		}
		epoch = u.epoch.Load()
	}
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	start := time.Now()
	c, err := u.claimTx(ctx, start, u.blocked.keys(start))
	if err != nil {
		return false, err
	}
	u.blocked.add(c.blocked, start.Add(blockedKeyTTL(u.cfg.PollInterval)))
	full := c.candidates == u.cfg.BatchSize
	if len(c.rows) == 0 {
		return full, nil
	}
	slices.SortFunc(c.rows, func(a, b *row) int { return cmp.Compare(a.ID, b.ID) })
	u.log.Debug("claimed", "rows", len(c.rows), "candidates", c.candidates, "blocked_keys", len(c.blocked), "took", time.Since(start))
	if u.ctx.Err() != nil {
		u.release(c.rows...)
		return false, nil
	}
	// Publish well before the lease ends, so that no other relay takes the
	// rows while this one still publishes them.
	margin := min(u.cfg.Lease/2, 5*time.Second)
	u.prefetch.Store(false)
	u.batches <- &batch{rows: c.rows, epoch: epoch, publishBy: start.Add(u.cfg.Lease - margin)}
	return full, nil
}

type claimResult struct {
	rows       []*row
	candidates int      // rows locked in step 1
	blocked    []string // keys whose candidates stopped at a barrier
}

// claimTx runs a claim as one transaction in two round trips: begin and
// lock the candidates; then lease the claimable ones and commit.
func (u *run) claimTx(ctx context.Context, start time.Time, skip []string) (c claimResult, err error) {
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
	b.Queue(claimCandidatesSQL, u.cfg.BatchSize, u.cfg.ID, skip)
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
	ids, c.blocked = claimable(cands, keyRows)
	if len(ids) == 0 {
		return c, nil
	}

	b = &pgx.Batch{}
	b.Queue(claimLeaseSQL, u.cfg.ID, ids, millis(u.cfg.Lease))
	b.Queue(commitSQL)
	res = conn.SendBatch(ctx, b)
	rows, _ := res.Query()
	c.rows, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*row, error) {
		rw := &row{claimedAt: start}
		var attempt int32
		err := r.Scan(&rw.ID, &rw.MessageID, &rw.Topic, &rw.Key, &rw.Payload, &rw.Headers, &rw.CreatedAt, &attempt)
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
// key, the key's pending rows up to its last candidate that this relay does
// not lease itself. A candidate is claimable when no such row of its key with
// a smaller id is missing from the candidates: that row is leased by another
// relay, backing off or being claimed by another relay right now, and the
// candidate must not overtake it.
func claimable(cands, keyRows []keyRow) (ids []int64, blocked []string) {
	isCand := make(map[int64]bool, len(cands))
	for _, c := range cands {
		isCand[c.ID] = true
	}
	barrier := map[string]int64{}
	for _, kr := range keyRows {
		if isCand[kr.ID] {
			continue
		}
		if b, ok := barrier[kr.Key]; !ok || kr.ID < b {
			barrier[kr.Key] = kr.ID
		}
	}
	ids = make([]int64, 0, len(cands))
	for _, c := range cands {
		if b, ok := barrier[c.Key]; !ok || c.ID < b {
			ids = append(ids, c.ID)
		}
	}
	for k := range barrier {
		blocked = append(blocked, k)
	}
	return ids, blocked
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
