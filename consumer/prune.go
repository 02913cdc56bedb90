package consumer

import (
	"context"
	"time"

	jsql "github.com/jobsd/jobsd/sql"
)

const (
	// pruneBatch is the most inbox rows one DELETE removes: short
	// statements that hold few locks and never stall the consumers' inserts.
	pruneBatch = 1000

	// pruneIntervalMax is the longest wait between two pruning passes.
	pruneIntervalMax = time.Hour
)

var inboxPruneSQL = jsql.Statement("consumer_inbox_prune")

// pruneLoop deletes the queue's consumer_inbox rows older than
// InboxRetention, at once and then every hour (or every InboxRetention when
// that is shorter), until ctx is done. It runs beside the workers, never in
// their transactions; a failed pass (database down) is logged and retried at
// the next interval.
func (c *Consumer) pruneLoop(ctx context.Context) {
	interval := max(time.Second, min(pruneIntervalMax, c.cfg.InboxRetention))
	for {
		n, err := c.pruneInbox(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log.Warn("pruning consumer_inbox failed, retrying at the next interval", "next_in", interval, "err", err)
		case n > 0:
			c.log.Info("pruned consumer_inbox", "rows", n, "older_than", c.cfg.InboxRetention)
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

// pruneInbox deletes the queue's expired inbox rows, pruneBatch per
// statement, until a statement deletes fewer. It returns how many it deleted.
func (c *Consumer) pruneInbox(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := c.pool.Exec(ctx, inboxPruneSQL, c.cfg.Queue, c.cfg.InboxRetention, pruneBatch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}
