package outbox_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// oddJSON is JSON that jsonb would rewrite: key order, whitespace, escapes,
// a duplicate key, a number with trailing zeros beyond int64.
const oddJSON = "{\"z\": 1,\n  \"a\" :[1 ,2],\t\"big\": 12345678901234567890.000, " +
	`"u": "\u00e9\ud83d\ude00\/", "e": 1E+3, "dup": 1, "dup": 2}`

// protobuf is a protobuf encoding (field 1 varint 42, field 2 bytes "\x00\xff"):
// NUL and invalid UTF-8, as binary bodies have.
var protobuf = []byte{0x08, 0x2a, 0x12, 0x02, 0x00, 0xff}

// storedBody returns the body, content type and payload (as jsonb text) of row id.
func storedBody(t *testing.T, db *testdb.DB, id int64) (body []byte, contentType, payload *string) {
	t.Helper()
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT body, content_type, payload::text FROM outbox_event WHERE id = $1", id).Scan(&body, &contentType, &payload))
	return body, contentType, payload
}

// TestWriteKeepsBytes: outbox.Write, outbox.WriteSQL (both drivers) and the
// SQL functions store the payload byte for byte, and payload holds its jsonb
// for SQL; a protobuf body is stored with its content type and no jsonb.
func TestWriteKeepsBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	events := []outbox.Event{
		{Topic: "t", Key: "k", Payload: []byte(oddJSON)},
		{Topic: "t", Key: "k", Payload: protobuf, ContentType: "application/x-protobuf"},
		{Topic: "t", Key: "k", Payload: []byte(`{"b":1}`), ContentType: "application/cloudevents+json; charset=utf-8"},
		{Topic: "t", Key: "k", Payload: []byte{}, ContentType: "application/octet-stream"},
	}
	check := func(t *testing.T, ids []int64) {
		t.Helper()
		require.Len(t, ids, len(events))
		body, ct, payload := storedBody(t, db, ids[0])
		require.Equal(t, oddJSON, string(body))
		require.Nil(t, ct)
		require.JSONEq(t, `{"z": 1, "a": [1, 2], "big": 12345678901234567890.000, "u": "é😀/", "e": 1000, "dup": 2}`, *payload)
		require.Contains(t, *payload, "12345678901234567890.000")

		body, ct, payload = storedBody(t, db, ids[1])
		require.Equal(t, protobuf, body)
		require.Equal(t, "application/x-protobuf", *ct)
		require.Nil(t, payload)

		body, ct, payload = storedBody(t, db, ids[2])
		require.Equal(t, `{"b":1}`, string(body))
		require.Equal(t, "application/cloudevents+json; charset=utf-8", *ct)
		require.Equal(t, `{"b": 1}`, *payload)

		body, _, payload = storedBody(t, db, ids[3])
		require.Equal(t, []byte{}, body)
		require.Nil(t, payload)
	}

	t.Run("Write", func(t *testing.T) {
		var ids []int64
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
			ids, err = outbox.WriteReturningIDs(ctx, tx, events...)
			return err
		}))
		check(t, ids)
	})
	for _, driver := range sqlDrivers {
		t.Run("WriteSQL "+driver, func(t *testing.T) {
			sqlDB := openSQL(t, driver, db)
			tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{})
			require.NoError(t, err)
			ids, err := outbox.WriteSQLReturningIDs(ctx, tx, events...)
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			check(t, ids)
		})
	}
	t.Run("SQL functions", func(t *testing.T) {
		ids := make([]int64, 4)
		// An untyped literal goes to outbox_write(text, ...), which keeps the bytes.
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT outbox_write('t', 'k', '"+oddJSON+"')").Scan(&ids[0]))
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT outbox_write_body('t', 'k', $1, 'application/x-protobuf')", protobuf).Scan(&ids[1]))
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT outbox_write_body('t', 'k', $1, $2)", []byte(`{"b":1}`),
			"application/cloudevents+json; charset=utf-8").Scan(&ids[2]))
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT outbox_write_body('t', 'k', '', 'application/octet-stream')").Scan(&ids[3]))
		check(t, ids)

		// A jsonb argument and a plain INSERT of payload: jsonb's text, as before.
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT outbox_write('t', 'k', '{"b":1,  "a":2}'::jsonb)`).Scan(&id))
		body, ct, payload := storedBody(t, db, id)
		require.Nil(t, body)
		require.Nil(t, ct)
		require.Equal(t, `{"a": 2, "b": 1}`, *payload)
		require.NoError(t, db.Pool.QueryRow(ctx,
			`INSERT INTO outbox_event (topic, key, payload) VALUES ('t', 'k', '{"b":1,  "a":2}') RETURNING id`).Scan(&id))
		body, _, payload = storedBody(t, db, id)
		require.Nil(t, body)
		require.Equal(t, `{"a": 2, "b": 1}`, *payload)
	})
}

// TestSQLBodyRefusals: what the trigger and outbox_write_body refuse about a
// body and its content type.
func TestSQLBodyRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	for _, tt := range []struct {
		name, sql string
		args      []any
		code      string
		want      string
	}{
		{"content type without body", `INSERT INTO outbox_event (topic, payload, content_type) VALUES ('t', '1', 'text/plain')`, nil,
			"23514", "content_type is set but body is NULL"},
		{"empty content type", `INSERT INTO outbox_event (topic, body, content_type) VALUES ('t', '\x01', '')`, nil,
			"23514", "content_type is empty"},
		{"body too large", `INSERT INTO outbox_event (topic, body, content_type) VALUES ('t', $1, 'a/b')`,
			[]any{make([]byte, outbox.MaxPayloadBytes+1)}, "23514", "body is 1048577 bytes"},
		{"JSON body not JSON", `INSERT INTO outbox_event (topic, body) VALUES ('t', '{"a":')`, nil, "22P02", "json"},
		{"JSON body not UTF-8", `INSERT INTO outbox_event (topic, body) VALUES ('t', '\xff')`, nil, "22021", "UTF8"},
		{"JSON body with NUL escape", `SELECT outbox_write('t', 'k', '"\u0000"')`, nil, "22P05", "unsupported Unicode escape sequence"},
		{"null body", `SELECT outbox_write_body('t', 'k', NULL)`, nil, "22023", "body is null"},
		{"long content type", `SELECT outbox_write_body('t', 'k', '\x01', repeat('c', 256))`, nil, "22023", "content_type is longer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Pool.Exec(ctx, tt.sql, tt.args...)
			require.Equal(t, tt.code, pgCode(err), "%v", err)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// A body of exactly the maximum is taken.
	_, err := db.Pool.Exec(ctx, `INSERT INTO outbox_event (topic, body, content_type) VALUES ('t', $1, 'a/b')`,
		make([]byte, outbox.MaxPayloadBytes))
	require.NoError(t, err)
}

func TestJSONContentType(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for _, ct := range []string{
		"", "application/json", "Application/JSON", " application/json ; charset=utf-8", "application/cloudevents+json",
		"application/problem+json;x=y", "text/vnd.a+json", "/+json", "application/json-seq", "application/x-protobuf",
		"text/plain", "json", "+json", "application/jsonx", "application/+jsonx",
	} {
		var sqlSays bool
		arg := &ct
		if ct == "" {
			arg = nil
		}
		require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT outbox_json_content_type($1)", arg).Scan(&sqlSays))
		require.Equal(t, sqlSays, outbox.JSONContentType(ct), "content type %q", ct)
	}
}
