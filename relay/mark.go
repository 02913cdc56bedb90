package relay

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	markPublishedSQL   = jsql.Statement("relay_mark_published")
	deletePublishedSQL = jsql.Statement("relay_delete_published")
)

const (
	// markRetryDelay is the pause before marking again after the database failed.
	markRetryDelay = 500 * time.Millisecond
	// markCoalesce is how long the marker lets confirms gather at low rates.
	markCoalesce = 5 * time.Millisecond
)

// markLoop marks the rows the broker confirmed as published (or deletes them
// with RetentionDeleteAtOnce), in bulk: each statement takes every confirm that
// arrived while the previous one ran.
func (u *run) markLoop() {
	db := context.WithoutCancel(u.ctx)
	for {
		select {
		case <-u.markKick:
			// Let a few more confirms join this round unless a batch is
			// already waiting: fewer, larger statements at low rates.
			if u.unmarked.Load() < int64(u.cfg.BatchSize)/2 {
				select {
				case <-time.After(markCoalesce):
				case <-u.stop:
				}
			}
			if !u.markConfirmed(db) {
				select {
				case <-u.stop:
				case <-time.After(markRetryDelay):
					signal(u.markKick)
				}
			}
		case <-u.stop:
			ctx, cancel := context.WithTimeout(db, finalFlushTimeout)
			u.markConfirmed(ctx)
			cancel()
			return
		}
	}
}

// markConfirmed writes the confirmed rows; it reports false when the database
// failed (the rows are kept for the next try).
func (u *run) markConfirmed(db context.Context) bool {
	u.mu.Lock()
	confirmed := u.confirmed
	u.confirmed = nil
	u.mu.Unlock()
	if len(confirmed) == 0 {
		return true
	}
	ids := make([]int64, len(confirmed))
	for i, rw := range confirmed {
		ids[i] = rw.ID
	}
	stmt := markPublishedSQL
	if u.cfg.deletesAtOnce() {
		stmt = deletePublishedSQL
	}
	ctx, cancel := context.WithTimeout(db, dbTimeout)
	defer cancel()
	start := time.Now()
	b := &pgx.Batch{}
	b.Queue(settingsSQL)
	b.Queue(stmt, ids)
	res := u.db.SendBatch(ctx, b)
	_, err := res.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = res.Exec()
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Until marked, the rows stay leased; if the lease runs out first they
		// are published again (a duplicate, never a loss).
		u.log.Warn("cannot mark confirmed rows published; retrying", "rows", len(ids), "err", err)
		u.mu.Lock()
		u.confirmed = append(confirmed, u.confirmed...)
		u.mu.Unlock()
		return false
	}
	u.unhold(confirmed)
	u.unmarked.Add(-int64(len(ids)))
	signal(u.marked)
	n := tag.RowsAffected()
	u.log.Debug("marked", "rows", n, "took", time.Since(start))
	u.published.Add(n)
	u.metrics.published(n)
	return true
}
