// Package outbox lets an application write events inside its own Postgres
// transaction. The events become visible to the relay, which publishes them to
// RabbitMQ, only when that transaction commits; if it rolls back, they never
// existed.
//
// [Write] takes a [pgx.Tx], so that a pool or a connection outside a
// transaction does not compile; [WriteSQL] is its twin for database/sql
// (sqlc, GORM, Bun, ent), taking a *sql.Tx. Both validate every event before
// sending any SQL: an event that Postgres or RabbitMQ would refuse (see the
// Max* constants, [ReservedHeader] and [ErrInvalidEvent]) is rejected without
// aborting the caller's transaction. The relay publishes the payload's bytes
// exactly as written (outbox_event.body), JSON or not (see Event.ContentType);
// a JSON payload is also stored as jsonb (outbox_event.payload) for SQL.
// Producers in other languages call the SQL function outbox_write(topic,
// key, payload, headers) or outbox_write_body(topic, key, body, content_type,
// headers), which apply the same limits and take the same per-key lock; the trigger
// outbox_event_sendable refuses, with SQLSTATE 23514 (check_violation), a row
// the relay could never send, whoever inserts it.
//
// The caller's OpenTelemetry trace context, the span in the ctx given to
// Write, is stored with each event as its traceparent (and tracestate) header
// (see TraceParentHeader): the relay publishes it and jobsd consume continues
// the trace. Without a span in ctx nothing is added.
//
// It imports pgx, database/sql, the sql package and OpenTelemetry's trace API
// only: an application links it without River, RabbitMQ or the relay.
package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

// ErrInvalidEvent is wrapped by every validation error of Write and WriteSQL.
var ErrInvalidEvent = errors.New("invalid outbox event")

// Event is one message for the relay to publish.
type Event struct {
	// Topic names the kind of event, e.g. "user.signed_up"; it becomes the AMQP
	// message type. Required.
	Topic string

	// Key orders events: events of one key are published in the order their
	// transactions committed. Use the id of the entity the event is about.
	// Empty means no ordering is needed: such writers never wait for each
	// other (they take no per-key lock).
	Key string

	// Payload is the message body, published exactly as written (the relay
	// sends these bytes, not a re-encoding). With a JSON ContentType, a []byte
	// or json.RawMessage must already be valid JSON (that Postgres jsonb
	// accepts: it is also stored as jsonb for SQL, see outbox_event.payload);
	// anything else is encoded with encoding/json. With another ContentType
	// it must be a []byte, sent as it is.
	Payload any

	// ContentType is the AMQP content_type of Payload (and the CloudEvents
	// datacontenttype). Empty means application/json. application/json and
	// any */*+json, with or without parameters, are JSON; anything else
	// (application/x-protobuf, text/plain, ...) is opaque bytes. At most
	// MaxContentTypeBytes.
	ContentType string

	// Headers are copied into the AMQP message headers, next to the ones the
	// relay sets. Names are 1 to MaxHeaderNameBytes bytes and not reserved
	// (see ReservedHeader); names and values together stay under
	// MaxHeadersBytes.
	//
	// Write adds traceparent and tracestate (TraceParentHeader,
	// TraceStateHeader) from the span in its ctx, unless the event sets
	// either of them itself (a producer that propagates its own trace
	// context), or they would take the headers over MaxHeadersBytes. The
	// map itself is never modified.
	Headers map[string]string
}

var (
	insertSQL   = jsql.Statement("outbox_insert")
	lockKeysSQL = jsql.Statement("outbox_lock_keys")
)

// Write inserts events in the caller's transaction. They are relayed only after
// the transaction commits: rolled back, they never existed.
//
// Every event is validated before any SQL is sent. An invalid event (empty
// topic, payload that is not JSON, that Postgres jsonb refuses or that is
// larger than MaxPayloadBytes, headers over their limits, ...) makes Write
// return an error wrapping ErrInvalidEvent and saying what is wrong, without
// writing anything and without aborting tx: the caller may go on with it.
//
// Write takes a transaction-scoped advisory lock per distinct non-empty key,
// held until commit, so that two transactions writing the same key are
// serialised and the relay publishes their events in commit order. The keys of
// one call are locked in sorted order, so two transactions that each write
// their events in one call never deadlock. Across several calls in one
// transaction the locks are taken call by call: two transactions writing keys
// a then b and b then a in separate calls can deadlock. Write all the events of
// a transaction in one call, or write keys in a consistent order (e.g.
// sorted); otherwise Postgres aborts one of the transactions with SQLSTATE
// 40P01 (deadlock_detected), which the caller can retry as a whole.
func Write(ctx context.Context, tx pgx.Tx, events ...Event) error {
	_, err := WriteReturningIDs(ctx, tx, events...)
	return err
}

// WriteReturningIDs is Write, returning the ids of the new outbox_event rows in
// the order of events.
func WriteReturningIDs(ctx context.Context, tx pgx.Tx, events ...Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	c, err := encodeColumns(ctx, events)
	if err != nil {
		return nil, err
	}

	batch := &pgx.Batch{}
	batch.Queue(lockKeysSQL, c.keys)
	batch.Queue(insertSQL, c.topics, c.keys, c.bodies, c.headers, c.contentTypes)
	results := tx.SendBatch(ctx, batch)
	defer results.Close()
	if _, err := results.Exec(); err != nil {
		return nil, fmt.Errorf("outbox: lock keys: %w", err)
	}
	rows, err := results.Query()
	if err != nil {
		return nil, fmt.Errorf("outbox: insert: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("outbox: insert: %w", err)
	}
	return ids, results.Close()
}

// columns are the parameters of outbox_insert.sql: parallel arrays, one
// element per event.
type columns struct {
	topics, keys, headers, contentTypes []string
	bodies                              [][]byte
}

// encodeColumns validates every event and returns them as columns, or an
// error wrapping ErrInvalidEvent that names the first invalid event.
func encodeColumns(ctx context.Context, events []Event) (columns, error) {
	n := len(events)
	c := columns{make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)}
	for i, e := range events {
		p, h, err := e.encode(ctx)
		if err != nil {
			return columns{}, fmt.Errorf("outbox: event %d: %w", i, err)
		}
		c.topics[i], c.keys[i], c.bodies[i], c.headers[i], c.contentTypes[i] = e.Topic, e.Key, p, string(h), e.ContentType
	}
	return c, nil
}
