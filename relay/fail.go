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

// writeFailuresAndReleases records the failed rows (retry or dead), gives
// back the released ones and those of uncertain claims. What cannot be
// written is kept and tried again: until then the claimer does not claim
// (see claim), so the table and the run's memory never disagree about which
// rows block a key. It reports whether it released rows.
func (u *run) writeFailuresAndReleases(db context.Context) bool {
	u.mu.Lock()
	failed, released, uncertain := u.failed, u.released, u.uncertain
	u.failed, u.released, u.uncertain = nil, nil, nil
	u.mu.Unlock()
	if len(failed) == 0 && len(released) == 0 && len(uncertain) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()

	if len(failed) > 0 {
		if err := u.writeFailures(ctx, failed); err != nil {
			u.log.Warn("cannot record failed publishes; retrying", "rows", len(failed), "err", err)
			u.mu.Lock()
			u.failed = append(u.failed, failed...)
			u.mu.Unlock()
		} else {
			rows := make([]*row, len(failed))
			for i, f := range failed {
				rows[i] = f.row
			}
			u.unhold(rows)
		}
	}
	wrote := false
	if len(released) > 0 {
		ids := make([]int64, len(released))
		for i, rw := range released {
			ids[i] = rw.ID
		}
		if _, err := u.db.Exec(ctx, releaseSQL, u.holder, ids); err != nil {
			u.log.Warn("cannot release rows; retrying", "rows", len(ids), "err", err)
			u.mu.Lock()
			u.released = append(u.released, released...)
			u.mu.Unlock()
		} else {
			u.unhold(released)
			wrote = true
		}
	}
	if len(uncertain) > 0 {
		if _, err := u.db.Exec(ctx, releaseUncertainSQL, u.holder, uncertain); err != nil {
			u.log.Warn("cannot give back the rows of a claim with an unknown outcome; retrying", "rows", len(uncertain), "err", err)
			u.mu.Lock()
			u.uncertain = append(u.uncertain, uncertain...)
			u.mu.Unlock()
		} else {
			wrote = true
		}
	}
	return wrote
}

func (u *run) writeFailures(ctx context.Context, failed []failure) error {
	ids := make([]int64, len(failed))
	reasons := make([]string, len(failed))
	permanent := make([]bool, len(failed))
	messageIDs := make(map[int64]string, len(failed))
	for i, f := range failed {
		ids[i], reasons[i], permanent[i] = f.row.ID, f.reason, f.permanent
		messageIDs[f.row.ID] = f.row.MessageID
	}
	rows, err := u.db.Query(ctx, markFailedSQL, u.holder, ids, reasons,
		millis(u.cfg.RetryBackoff), millis(RetryBackoffMax), u.cfg.MaxAttempts, permanent)
	if err != nil {
		return err
	}
	var id int64
	var state string
	var attempt int32
	_, err = pgx.ForEachRow(rows, []any{&id, &state, &attempt}, func() error {
		u.metrics.failure(state)
		if state == "dead" {
			u.log.Error("outbox event is dead (jobsd outbox replay --id makes it pending again)",
				"event_id", id, "message_id", messageIDs[id], "attempts", attempt)
		}
		return nil
	})
	return err
}
