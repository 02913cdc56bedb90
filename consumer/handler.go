package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	jsql "github.com/jobsd/jobsd/sql"
)

// Handler applies the effect of messages inside tx, the transaction that also
// records them in consumer_inbox. It gets, in delivery order, the messages of
// one batch whose ids were not in the inbox yet (each id once); it is never
// called with an empty batch. If it returns an error the transaction rolls
// back and nothing of the batch is acked.
//
// An error wrapped with Permanent (or a Postgres data exception, SQLSTATE
// class 22) dead-letters the message that caused it. A database error (the
// connection lost or refused, a timeout, a serialization failure or deadlock,
// a shutdown; also any network error or timeout: see the package doc) holds
// the batch, unacked, and retries it
// until the database is back. Any other error is retried in the process with
// a backoff, and dead-letters the message after Config.MaxAttempts tries. To
// find the culprit, a failed batch of several messages is retried one message
// per transaction. Nothing is ever nacked with requeue while the consumer
// runs.
//
// A Handler must not commit or roll back tx, and must be safe for concurrent
// use: each of the Consumer's workers calls it. Messages reach it in queue
// order within one worker, but workers and competing consumers run batches in
// parallel and redelivered messages come back later: an effect that depends
// on the order of messages must not rely on delivery order. A panic is
// treated as an ordinary (retried) error.
type Handler func(ctx context.Context, tx pgx.Tx, batch []Delivery) error

// Each adapts a function that handles one message to a Handler; it calls fn
// for the messages of a batch in order, in the batch's transaction, each with
// d.Context(ctx): inside the message's processing span when tracing is on.
func Each(fn func(ctx context.Context, tx pgx.Tx, d Delivery) error) Handler {
	return func(ctx context.Context, tx pgx.Tx, batch []Delivery) error {
		for _, d := range batch {
			if err := fn(d.Context(ctx), tx, d); err != nil {
				return err
			}
		}
		return nil
	}
}

// ErrPermanent is wrapped by the errors of Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks a Handler error as permanent: the message will never be
// handled, so it is dead-lettered at once instead of retried.
func Permanent(err error) error {
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return "permanent failure: " + e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// isPermanent reports whether err can never succeed for the same message: a
// Permanent error or a Postgres data exception (invalid input syntax, value
// out of range, ...).
func isPermanent(err error) bool {
	if errors.Is(err, ErrPermanent) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "22"
}

var analyticsAddSQL = jsql.Statement("consumer_analytics_add")

// AnalyticsHandler is the default Handler, the analytics demo's effect: it
// counts messages per topic and UTC day (of the message timestamp, or of now
// when it has none) in analytics_counts, with one upsert per batch. Rows are
// upserted in key order so that concurrent batches cannot deadlock.
func AnalyticsHandler(ctx context.Context, tx pgx.Tx, batch []Delivery) error {
	type key struct {
		topic string
		day   time.Time
	}
	counts := make(map[key]int64)
	for _, d := range batch {
		counts[key{d.Topic, d.Day()}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].day.Before(keys[j].day)
	})
	topics := make([]string, len(keys))
	days := make([]time.Time, len(keys))
	ns := make([]int64, len(keys))
	for i, k := range keys {
		topics[i], days[i], ns[i] = k.topic, k.day, counts[k]
	}
	if _, err := tx.Exec(ctx, analyticsAddSQL, topics, days, ns); err != nil {
		return fmt.Errorf("count analytics: %w", err)
	}
	return nil
}
