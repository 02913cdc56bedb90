package outbox

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
)

// WriteSQL is Write for database/sql: it inserts events in the caller's
// *sql.Tx, for applications whose own rows are written through database/sql
// (sqlc, GORM, Bun, ent, sqlx). It takes a *sql.Tx, so that a *sql.DB or a
// *sql.Conn, which would write outside the caller's transaction, does not
// compile.
//
// It validates events as Write does (an invalid event returns an error
// wrapping ErrInvalidEvent before any SQL is sent, and tx stays usable), takes
// the same per-key advisory locks (with the same advice on deadlocks) and runs
// the same INSERT; it costs two round trips where Write sends one batch.
//
// The arrays of the statements are sent as strings in Postgres' array text
// form, which any driver accepts for a text[], jsonb[] or bytea[] parameter
// (bodies in bytea's hex form: twice their size on the wire). The
// supported driver is pgx's, github.com/jackc/pgx/v5/stdlib (driver name
// "pgx"); the tests also run lib/pq (driver name "postgres").
func WriteSQL(ctx context.Context, tx *sql.Tx, events ...Event) error {
	_, err := WriteSQLReturningIDs(ctx, tx, events...)
	return err
}

// WriteSQLReturningIDs is WriteSQL, returning the ids of the new outbox_event
// rows in the order of events.
func WriteSQLReturningIDs(ctx context.Context, tx *sql.Tx, events ...Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	c, err := encodeColumns(ctx, events)
	if err != nil {
		return nil, err
	}
	keys := textArray(c.keys)
	if _, err := tx.ExecContext(ctx, lockKeysSQL, keys); err != nil {
		return nil, fmt.Errorf("outbox: lock keys: %w", err)
	}
	rows, err := tx.QueryContext(ctx, insertSQL,
		textArray(c.topics), keys, byteaArray(c.bodies), textArray(c.headers), textArray(c.contentTypes))
	if err != nil {
		return nil, fmt.Errorf("outbox: insert: %w", err)
	}
	defer rows.Close()
	ids := make([]int64, 0, len(events))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("outbox: insert: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: insert: %w", err)
	}
	return ids, rows.Close()
}

// byteaArray returns the text form of a one-dimensional bytea array of bs,
// each element in bytea's hex form: {"\\x7b7d","\\x0a02"}.
func byteaArray(bs [][]byte) string {
	size := len("{}")
	for _, b := range bs {
		size += len(`"\\x",`) + 2*len(b)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('{')
	for i, x := range bs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"\\x`)
		b.WriteString(hex.EncodeToString(x))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// textArray returns the text form of a one-dimensional Postgres array of ss,
// every element quoted and its " and \ escaped: {"a","b\"c"}. The elements
// are valid UTF-8 without NUL bytes (encodeColumns checked them); " and \ are
// ASCII, so they never occur inside a multi-byte character.
func textArray(ss []string) string {
	size := len("{}")
	for _, s := range ss {
		size += len(`"",`) + len(s)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('{')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := range len(s) {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
