package consumer

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	jsql "github.com/jobsd/jobsd/sql"
)

// worker handles the deliveries of one channel, in order, a batch at a time.
// Because it settles every batch before it takes the next, every unsettled
// delivery tag at or below a batch's last tag belongs to that batch, which
// makes the multiple-acks and multiple-nacks exact.
type worker struct {
	c          *Consumer
	deliveries <-chan amqp.Delivery
	lost       <-chan struct{} // closed when the session's connection is lost
	failures   int             // consecutive failed batches, for the backoff
}

// run handles deliveries until the channel closes (consumer cancelled or
// connection lost). ctx is done on stop or when the session ends; it only
// cuts backoffs short, never a transaction. On a stop the worker handles all
// it received; once the connection is lost it drops them unhandled.
func (w *worker) run(ctx context.Context) {
	batch := make([]amqp.Delivery, 0, w.c.cfg.BatchSize)
	for {
		d, ok := <-w.deliveries
		if !ok {
			return
		}
		if w.isLost() {
			continue // unackable now: the broker requeues it
		}
		batch = append(batch[:0], d)
	fill: // take what the broker already sent, never wait for more
		for len(batch) < w.c.cfg.BatchSize {
			select {
			case d, ok := <-w.deliveries:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		if w.isLost() {
			continue
		}
		w.handle(ctx, batch)
	}
}

func (w *worker) isLost() bool {
	select {
	case <-w.lost:
		return true
	default:
		return false
	}
}

// handle settles one batch: rejects the malformed deliveries, applies the
// others in one transaction and acks them; on failure it finds the culprit by
// retrying one message per transaction.
func (w *worker) handle(ctx context.Context, batch []amqp.Delivery) {
	msgs := make([]Delivery, 0, len(batch))
	raws := make([]*amqp.Delivery, 0, len(batch))
	for i := range batch {
		m, err := parse(&batch[i])
		if err != nil {
			w.reject(&batch[i], err)
			continue
		}
		msgs, raws = append(msgs, m), append(raws, &batch[i])
	}
	if len(msgs) == 0 {
		return
	}
	fresh, err := w.c.apply(ctx, msgs)
	if err == nil {
		w.ack(raws[len(raws)-1], true, fresh, len(msgs)-fresh)
		return
	}
	if len(msgs) > 1 {
		w.c.log.Debug("batch failed, retrying its messages one by one", "messages", len(msgs), "error", err)
	}
	for i := range msgs {
		if len(msgs) > 1 {
			fresh, err = w.c.apply(ctx, msgs[i:i+1])
			if err == nil {
				w.ack(raws[i], false, fresh, 1-fresh)
				continue
			}
		}
		if isPermanent(err) {
			w.reject(raws[i], err)
			continue
		}
		w.requeue(ctx, raws[i:], err)
		return
	}
}

func (w *worker) ack(d *amqp.Delivery, multiple bool, processed, duplicates int) {
	w.failures = 0
	w.c.stats.add(processed, duplicates, 0, 0)
	if err := d.Ack(multiple); err != nil {
		// Committed but not acked: the broker redelivers, the inbox dedupes.
		w.c.log.Debug("ack failed; the messages will be redelivered as duplicates", "error", err)
	}
}

// reject dead-letters a delivery that can never be handled.
func (w *worker) reject(d *amqp.Delivery, why error) {
	w.c.log.Warn("dead-lettering message", "message_id", d.MessageId, "type", d.Type,
		"dead_letter_queue", DeadLetterQueue(w.c.cfg.Queue), "reason", why)
	if err := d.Reject(false); err != nil {
		w.c.log.Debug("reject failed; the message will be redelivered", "error", err)
		return
	}
	w.c.stats.add(0, 0, 1, 0)
}

// requeue waits the backoff (cut short when ctx is done), then nacks ds, the
// unsettled tail of a batch, with requeue.
func (w *worker) requeue(ctx context.Context, ds []*amqp.Delivery, why error) {
	wait := w.c.backoff(w.failures)
	w.failures++
	w.c.log.Warn("handling failed, requeueing after a backoff", "messages", len(ds), "backoff", wait,
		"consecutive_failures", w.failures, "error", why)
	sleep(ctx, wait)
	if err := ds[len(ds)-1].Nack(true, true); err != nil {
		w.c.log.Debug("nack failed; the broker requeues the messages when the channel closes", "error", err)
		return
	}
	w.c.stats.add(0, 0, 0, len(ds))
}

var inboxInsertSQL = jsql.Statement("consumer_inbox_insert")

// apply runs one transaction: it records msgs in the inbox and hands those
// whose ids were new to the Handler. It returns how many were new. The
// transaction is bounded by TxTimeout and not cancelled with ctx.
func (c *Consumer) apply(ctx context.Context, msgs []Delivery) (int, error) {
	txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.TxTimeout)
	defer cancel()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.MessageID
	}
	slices.Sort(ids) // one lock order for concurrent batches
	ids = slices.Compact(ids)

	var fresh []Delivery
	err := pgx.BeginFunc(txCtx, c.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(txCtx, inboxInsertSQL, c.cfg.Queue, ids)
		inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("record in consumer_inbox: %w", err)
		}
		isNew := make(map[string]bool, len(inserted))
		for _, id := range inserted {
			isNew[id] = true
		}
		fresh = fresh[:0]
		for _, m := range msgs {
			if isNew[m.MessageID] {
				fresh = append(fresh, m)
				delete(isNew, m.MessageID) // a second copy in the batch is a duplicate
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		return callHandler(txCtx, c.cfg.Handler, tx, fresh)
	})
	if err != nil {
		return 0, err
	}
	return len(fresh), nil
}

// callHandler runs h, turning a panic into an error: the transaction rolls
// back and the batch is requeued, as for any other Handler error.
func callHandler(ctx context.Context, h Handler, tx pgx.Tx, batch []Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, tx, batch)
}
