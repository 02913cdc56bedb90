package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	jsql "github.com/jobsd/jobsd/sql"
)

// worker handles the deliveries of one channel, in order, a batch at a time.
// Because it settles every batch before it takes the next, every unsettled
// delivery tag at or below a batch's last tag belongs to that batch, which
// makes the multiple-acks and multiple-nacks exact.
type worker struct {
	c          *Consumer
	deliveries <-chan amqp.Delivery
	lost       <-chan struct{} // closed when the session's connection or this worker's channel is lost
	dbDown     bool            // the last transaction failed with a database error
	// spans holds the processing spans of the batch in hand, by delivery
	// tag; nil while tracing is off.
	spans map[uint64]trace.Span
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
// others in one transaction and acks them. While the database is unavailable
// it holds the batch (see applyHolding). On a handler error it finds the
// culprit by retrying one message per transaction (see one).
func (w *worker) handle(ctx context.Context, batch []amqp.Delivery) {
	if w.c.trace.Tracer != nil {
		w.startSpans(batch)
		defer w.endSpans()
	}
	msgs := make([]Delivery, 0, len(batch))
	raws := make([]*amqp.Delivery, 0, len(batch))
	for i := range batch {
		m, err := parse(&batch[i])
		if err != nil {
			w.reject(&batch[i], err)
			continue
		}
		m.span = w.spanOf(&batch[i])
		msgs, raws = append(msgs, m), append(raws, &batch[i])
	}
	if len(msgs) == 0 {
		return
	}
	batchCtx := ctx
	if len(msgs) == 1 {
		batchCtx = msgs[0].Context(ctx) // the transaction runs in the message's span
	}
	fresh, err := w.applyHolding(batchCtx, msgs)
	switch {
	case err == nil:
		w.ack(raws[len(raws)-1], true, fresh, len(msgs)-fresh)
		return
	case errors.Is(err, errStopped):
		w.release(raws)
		return
	case len(msgs) == 1:
		if !w.one(batchCtx, msgs[0], raws[0], err) {
			w.release(raws)
		}
		return
	}
	w.c.log.Debug("batch failed, retrying its messages one by one", "messages", len(msgs), "err", err)
	for i := range msgs {
		if !w.one(msgs[i].Context(ctx), msgs[i], raws[i], nil) {
			w.release(raws[i:])
			return
		}
	}
}

// errStopped is returned when the consumer stops (or loses its channel)
// while it holds unsettled messages.
var errStopped = errors.New("consumer stopping")

// holdLogEvery is how often a worker that holds messages through a database
// outage logs once its backoff reached RetryBackoffMax; before that it logs
// once per backoff step.
const holdLogEvery = time.Minute

// applyHolding applies msgs in one transaction, retrying it in the process
// for as long as it fails with a database error (see isDatabaseError): the
// deliveries stay unacked meanwhile, so the broker neither redelivers them to
// another consumer nor counts a delivery against the queue's delivery limit,
// and the prefetch stops it from sending more. Requeueing them instead would
// cycle them through the queue and, on a quorum queue, dead-letter them after
// x-delivery-limit deliveries (20 by default on RabbitMQ 4). It returns the
// first outcome that is not a database error, or errStopped when ctx is done
// while it holds them.
func (w *worker) applyHolding(ctx context.Context, msgs []Delivery) (int, error) {
	if w.dbDown && ctx.Err() != nil {
		return 0, errStopped // stopping during an outage: release at once
	}
	var since, logged time.Time
	var loggedStep time.Duration
	for attempt := 0; ; attempt++ {
		fresh, err := w.c.apply(ctx, msgs)
		w.c.databaseFailing.Store(err != nil && isDatabaseError(err))
		if err == nil || !isDatabaseError(err) {
			if attempt > 0 {
				w.c.log.InfoContext(ctx, "database is back, applied the held messages", "messages", len(msgs),
					"attempts", attempt+1, "held_for", time.Since(since).Round(time.Millisecond))
			}
			w.dbDown = false
			return fresh, err
		}
		if attempt == 0 {
			since = time.Now()
		}
		w.dbDown = true
		step := w.c.backoffStep(attempt)
		wait := jitter(step)
		if step != loggedStep || time.Since(logged) >= holdLogEvery {
			w.c.log.WarnContext(ctx, "database unavailable, holding the messages unacked and retrying",
				"messages", len(msgs), "attempts", attempt+1, "retry_in", wait,
				"held_for", time.Since(since).Round(time.Millisecond), "err", err)
			loggedStep, logged = step, time.Now()
		}
		if !sleep(ctx, wait) {
			return 0, errStopped
		}
		w.c.stats.retried(true)
	}
}

// one settles m, a message of a failed batch, in transactions of its own: it
// acks it once applied, dead-letters it on a permanent error or after
// MaxAttempts handler errors, with RetryBackoff between attempts, and holds
// it through database errors (they do not count as attempts). err is the
// error of a first attempt already made, or nil. It returns false, leaving
// m unsettled, when ctx is done first.
func (w *worker) one(ctx context.Context, m Delivery, raw *amqp.Delivery, err error) bool {
	attempts := 0
	if err != nil {
		attempts = 1
	}
	for {
		if err == nil {
			var fresh int
			fresh, err = w.applyHolding(ctx, []Delivery{m})
			switch {
			case err == nil:
				w.ack(raw, false, fresh, 1-fresh)
				return true
			case errors.Is(err, errStopped):
				return false
			}
			attempts++
		}
		if isPermanent(err) {
			w.reject(raw, err)
			return true
		}
		if attempts >= w.c.cfg.MaxAttempts {
			w.reject(raw, fmt.Errorf("the handler failed %d times (MaxAttempts), last: %w", attempts, err))
			return true
		}
		wait := w.c.backoff(attempts - 1)
		w.c.log.WarnContext(ctx, "handler failed, retrying the message", "message_id", m.MessageID, "attempt", attempts,
			"max_attempts", w.c.cfg.MaxAttempts, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
		w.c.stats.retried(false)
		err = nil
	}
}

func (w *worker) ack(d *amqp.Delivery, multiple bool, processed, duplicates int) {
	w.c.stats.add(processed, duplicates, 0, 0)
	if err := d.Ack(multiple); err != nil {
		// Committed but not acked: the broker redelivers, the inbox dedupes.
		w.c.log.Debug("ack failed; the messages will be redelivered as duplicates", "err", err)
	}
}

// reject dead-letters a delivery that can never be handled.
func (w *worker) reject(d *amqp.Delivery, why error) {
	w.failSpan(d, why)
	w.c.log.WarnContext(w.spanContext(context.Background(), d), "dead-lettering message", "message_id", d.MessageId, "type", d.Type,
		"dead_letter_queue", DeadLetterQueue(w.c.cfg.Queue), "reason", why)
	if err := d.Reject(false); err != nil {
		w.c.log.Debug("reject failed; the message will be redelivered", "err", err)
		return
	}
	w.c.stats.add(0, 0, 1, 0)
}

// release returns ds, the unsettled tail of a batch, to the queue with one
// multiple nack: the consumer stops while it holds them (database down, or
// between two handler attempts). That counts one delivery against the
// queue's delivery limit. After a lost channel there is nothing to do: the
// broker requeued them already.
func (w *worker) release(ds []*amqp.Delivery) {
	if w.isLost() {
		return
	}
	if err := ds[len(ds)-1].Nack(true, true); err != nil {
		w.c.log.Debug("nack failed; the broker requeues the messages when the channel closes", "err", err)
		return
	}
	w.c.stats.add(0, 0, 0, len(ds))
	w.c.log.Info("stopping: returned the held messages to the queue", "messages", len(ds))
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

	start := time.Now()
	tx, err := c.pool.Begin(txCtx)
	if err != nil {
		return 0, &dbError{op: "begin", err: err}
	}
	defer tx.Rollback(txCtx) //nolint:errcheck // a no-op once committed
	rows, _ := tx.Query(txCtx, inboxInsertSQL, c.cfg.Queue, ids)
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, &dbError{op: "record in consumer_inbox", err: err}
	}
	isNew := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		isNew[id] = true
	}
	var fresh []Delivery
	for _, m := range msgs {
		if isNew[m.MessageID] {
			fresh = append(fresh, m)
			delete(isNew, m.MessageID) // a second copy in the batch is a duplicate
		}
	}
	if len(fresh) > 0 {
		if err := callHandler(txCtx, c.cfg.Handler, tx, fresh); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(txCtx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	c.stats.batchDone(time.Since(start), msgs)
	return len(fresh), nil
}

// callHandler runs h, turning a panic into an error: the transaction rolls
// back and the batch is retried, as for any other Handler error.
func callHandler(ctx context.Context, h Handler, tx pgx.Tx, batch []Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, tx, batch)
}
