package relay

import (
	"time"

	jsql "github.com/jobsd/jobsd/sql"
)

var retentionSQL = jsql.Statement("relay_retention")

// retentionBatch is how many rows one retention statement deletes at most.
const retentionBatch = 1000

// retentionLoop deletes published rows older than Retention, in small
// statements, on its own connection from the pool: it never blocks publishing.
func (u *run) retentionLoop() {
	t := time.NewTicker(retentionInterval(u.cfg.Retention))
	defer t.Stop()
	for {
		u.sweep()
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retentionInterval is half the retention, between 1s and 1m.
func retentionInterval(retention time.Duration) time.Duration {
	if retention == 0 {
		return time.Minute // rows are deleted when confirmed; this catches older ones
	}
	return min(max(retention/2, time.Second), time.Minute)
}

func (u *run) sweep() {
	deleted := int64(0)
	for u.ctx.Err() == nil {
		tag, err := u.db.Exec(u.ctx, retentionSQL, millis(u.cfg.Retention), retentionBatch)
		if err != nil {
			if u.ctx.Err() == nil {
				u.log.Warn("retention: cannot delete published rows; retrying later", "err", err)
			}
			return
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < retentionBatch {
			break
		}
	}
	if deleted > 0 {
		u.log.Debug("retention: deleted published rows", "rows", deleted, "retention", u.cfg.Retention)
	}
}
