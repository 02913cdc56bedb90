// Package outbox lets an application write events inside its own Postgres
// transaction. The events become visible to the relay, which publishes them to
// RabbitMQ, only when that transaction commits; if it rolls back, they never
// existed.
//
// It imports pgx and the sql package only: an application links it without
// River, RabbitMQ or the relay.
package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

const (
	// MaxPayloadBytes is the largest payload Write accepts, after JSON encoding.
	// It stays far below RabbitMQ's message size limit (16 MiB by default) so that
	// an accepted event can always be published.
	MaxPayloadBytes = 1 << 20

	// MaxTopicBytes and MaxKeyBytes bound the topic and key.
	MaxTopicBytes = 255
	MaxKeyBytes   = 255
)

// ErrInvalidEvent is wrapped by every validation error of Write.
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

	// Payload is the message body. A []byte or json.RawMessage must already be
	// valid JSON; anything else is encoded with encoding/json.
	Payload any

	// Headers are copied into the AMQP message headers.
	Headers map[string]string
}

// Tx is the part of a pgx transaction that Write needs. pgx.Tx (from
// pgx.Conn.Begin or pgxpool.Pool.Begin) and *pgxpool.Tx satisfy it.
type Tx interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	insertSQL   = jsql.Statement("outbox_insert")
	lockKeysSQL = jsql.Statement("outbox_lock_keys")
)

// Write inserts events in the caller's transaction. They are relayed only after
// the transaction commits. An invalid event (empty topic, payload that is not
// JSON or larger than MaxPayloadBytes, ...) makes Write return an error wrapping
// ErrInvalidEvent without writing anything.
//
// Write takes a transaction-scoped advisory lock per distinct non-empty key, held until
// commit, so that two transactions writing the same key are serialised and the
// relay publishes their events in commit order.
func Write(ctx context.Context, tx Tx, events ...Event) error {
	_, err := WriteReturningIDs(ctx, tx, events...)
	return err
}

// WriteReturningIDs is Write, returning the ids of the new outbox_event rows in
// the order of events.
func WriteReturningIDs(ctx context.Context, tx Tx, events ...Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	n := len(events)
	topics, keys := make([]string, n), make([]string, n)
	payloads, headers := make([]string, n), make([]string, n)
	for i, e := range events {
		p, h, err := e.encode()
		if err != nil {
			return nil, fmt.Errorf("outbox: event %d: %w", i, err)
		}
		topics[i], keys[i], payloads[i], headers[i] = e.Topic, e.Key, string(p), string(h)
	}

	batch := &pgx.Batch{}
	batch.Queue(lockKeysSQL, keys)
	batch.Queue(insertSQL, topics, keys, payloads, headers)
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

func (e Event) encode() (payload, headers []byte, err error) {
	switch {
	case e.Topic == "":
		return nil, nil, invalid("topic is empty")
	case len(e.Topic) > MaxTopicBytes:
		return nil, nil, invalid("topic is longer than %d bytes", MaxTopicBytes)
	case len(e.Key) > MaxKeyBytes:
		return nil, nil, invalid("key is longer than %d bytes", MaxKeyBytes)
	}
	if err := checkText("topic", e.Topic); err != nil {
		return nil, nil, err
	}
	if err := checkText("key", e.Key); err != nil {
		return nil, nil, err
	}
	for k, v := range e.Headers {
		if k == "" {
			return nil, nil, invalid("header name is empty")
		}
		if err := checkText("header "+k, k+v); err != nil {
			return nil, nil, err
		}
	}

	switch p := e.Payload.(type) {
	case json.RawMessage:
		payload = p
	case []byte:
		payload = p
	default:
		if payload, err = json.Marshal(p); err != nil {
			return nil, nil, invalid("payload cannot be encoded as JSON: %v", err)
		}
	}
	switch {
	case len(payload) > MaxPayloadBytes:
		return nil, nil, invalid("payload is %d bytes, more than the %d allowed", len(payload), MaxPayloadBytes)
	case !json.Valid(payload):
		return nil, nil, invalid("payload is not valid JSON")
	case !utf8.Valid(payload): // json.Valid accepts invalid UTF-8 in strings; Postgres does not
		return nil, nil, invalid("payload is not valid UTF-8")
	case hasNULEscape(payload):
		return nil, nil, invalid(`payload contains \u0000, which Postgres jsonb cannot store`)
	}

	if e.Headers == nil {
		return payload, []byte("{}"), nil
	}
	headers, err = json.Marshal(e.Headers)
	return payload, headers, err
}

// hasNULEscape reports whether valid JSON contains the escape \u0000. In valid
// JSON every backslash starts an escape, so skipping each escaped character
// tells an escaped backslash followed by "u0000" (text) from \u0000 (NUL).
func hasNULEscape(payload []byte) bool {
	for i := bytes.IndexByte(payload, '\\'); i >= 0 && i+1 < len(payload); {
		if bytes.HasPrefix(payload[i+1:], []byte("u0000")) {
			return true
		}
		next := bytes.IndexByte(payload[i+2:], '\\')
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}

func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", field)
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return invalid("%s contains a NUL byte", field)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}
