package relay

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	claimSQL      = jsql.Statement("relay_claim")
	markFailedSQL = jsql.Statement("relay_mark_failed")
	releaseSQL    = jsql.Statement("relay_release")
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
		if want && u.ctx.Err() == nil && u.sessionUp.Load() && len(u.batches) == 0 {
			want = false
			n, err := u.claim(db)
			switch {
			case err != nil:
				u.log.Warn("claim failed; retrying at the next poll", "err", err, "poll", u.cfg.PollInterval)
			case n == u.cfg.BatchSize:
				want = true // there is likely more
			}
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

// claim takes one batch and hands it to the publisher. It returns how many
// rows it claimed.
func (u *run) claim(db context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	epoch := u.epoch.Load()
	start := time.Now()
	rows, err := u.pool.Query(ctx, claimSQL, u.cfg.ID, u.cfg.BatchSize, millis(u.cfg.Lease))
	if err != nil {
		return 0, err
	}
	claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*row, error) {
		rw := &row{claimedAt: start}
		var attempt int32
		err := r.Scan(&rw.ID, &rw.MessageID, &rw.Topic, &rw.Key, &rw.Payload, &rw.Headers, &rw.CreatedAt, &attempt)
		rw.Attempt = int(attempt)
		return rw, err
	})
	if err != nil {
		return 0, err
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	slices.SortFunc(claimed, func(a, b *row) int { return int(a.ID - b.ID) })
	if u.ctx.Err() != nil {
		u.release(claimed...)
		return len(claimed), nil
	}
	// Publish well before the lease ends, so that no other relay takes the
	// rows while this one still publishes them.
	margin := min(u.cfg.Lease/2, 5*time.Second)
	u.batches <- &batch{rows: claimed, epoch: epoch, publishBy: start.Add(u.cfg.Lease - margin)}
	return len(claimed), nil
}

// writeFailuresAndReleases records the failed rows (retry or dead) and gives
// back the released ones. It reports whether it released rows.
func (u *run) writeFailuresAndReleases(db context.Context) bool {
	u.mu.Lock()
	failed, released := u.failed, u.released
	u.failed, u.released = nil, nil
	u.mu.Unlock()
	if len(failed) == 0 && len(released) == 0 {
		return false
	}
	defer u.epoch.Add(1) // claims from before this write are stale
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()

	if len(failed) > 0 {
		if err := u.writeFailures(ctx, failed); err != nil {
			u.log.Warn("cannot record failed publishes; retrying", "rows", len(failed), "err", err)
			u.mu.Lock()
			u.failed = append(u.failed, failed...)
			u.mu.Unlock()
		}
	}
	if len(released) > 0 {
		ids := make([]int64, len(released))
		for i, rw := range released {
			ids[i] = rw.ID
		}
		if _, err := u.pool.Exec(ctx, releaseSQL, u.cfg.ID, ids); err != nil {
			// Not lost: the lease runs out and the rows are claimed again.
			u.log.Warn("cannot release rows; they are claimed again when their lease ends",
				"rows", len(ids), "lease", u.cfg.Lease, "err", err)
		}
	}
	return len(released) > 0
}

func (u *run) writeFailures(ctx context.Context, failed []failure) error {
	ids := make([]int64, len(failed))
	reasons := make([]string, len(failed))
	for i, f := range failed {
		ids[i], reasons[i] = f.row.ID, f.reason
	}
	rows, err := u.pool.Query(ctx, markFailedSQL, u.cfg.ID, ids, reasons,
		millis(u.cfg.RetryBackoff), millis(RetryBackoffMax), u.cfg.MaxAttempts)
	if err != nil {
		return err
	}
	var id int64
	var state string
	var attempt int32
	_, err = pgx.ForEachRow(rows, []any{&id, &state, &attempt}, func() error {
		u.metrics.failure(state)
		if state == "dead" {
			u.log.Error("outbox event is dead after its last attempt (jobsd outbox replay --id makes it pending again)",
				"id", id, "attempts", attempt)
		}
		return nil
	})
	return err
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
