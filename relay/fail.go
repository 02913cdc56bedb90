package relay

import (
	"context"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	markFailedSQL = jsql.Statement("relay_mark_failed")
	releaseSQL    = jsql.Statement("relay_release")
)

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
		if _, err := u.db.Exec(ctx, releaseSQL, u.cfg.ID, ids); err != nil {
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
	rows, err := u.db.Query(ctx, markFailedSQL, u.cfg.ID, ids, reasons,
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
