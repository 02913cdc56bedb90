package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// FuzzWrite checks the write boundary against a real Postgres: an event that
// Write accepts is stored, its stored payload and headers respect the limits
// and make a valid AMQP header table; an event it rejects wraps
// ErrInvalidEvent and leaves the transaction usable. The SQL function
// outbox_write accepts exactly what Write accepts.
//
// Seeds: every file of testdata/outbox/: a .json file is a payload, a .header
// file a header (name, newline, value).
func FuzzWrite(f *testing.F) {
	dir := filepath.Join("..", "testdata", "outbox")
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		switch filepath.Ext(e.Name()) {
		case ".json":
			f.Add("user.signed_up", "42", b, "source", "seed")
		case ".header":
			name, value, _ := strings.Cut(string(b), "\n")
			f.Add("user.signed_up", "42", []byte(`{"id": 42}`), name, value)
		}
	}
	f.Add("", "", []byte(`1`), "", "")
	f.Add("t\x00", "k\xff", []byte(`"\ud83d\ude00"`), "h", "\x01\n\"")

	db := testdb.New(f) // one database per fuzzing process
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, topic, key string, payload []byte, name, value string) {
		event := outbox.Event{Topic: topic, Key: key, Payload: json.RawMessage(payload), Headers: map[string]string{name: value}}
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // nothing is kept

		ids, goErr := outbox.WriteReturningIDs(ctx, tx, event)
		if goErr != nil {
			if !errors.Is(goErr, outbox.ErrInvalidEvent) {
				t.Fatalf("Write failed without ErrInvalidEvent: %v", goErr)
			}
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatalf("the transaction is unusable after %v: %v", goErr, err)
			}
		} else {
			checkStored(t, tx, ids[0], key, payload)
		}

		_, sqlErr := sqlWrite(ctx, tx, topic, key, string(payload), headersJSON(name, value))
		if (goErr == nil) != (sqlErr == nil) {
			t.Fatalf("Write and outbox_write disagree: Go %v, SQL %v", goErr, sqlErr)
		}
	})
}

// checkStored checks row id as the relay will read it: the body is the
// payload byte for byte, and payload holds it as jsonb for SQL.
func checkStored(t *testing.T, tx pgx.Tx, id int64, key string, payload []byte) {
	t.Helper()
	var headers, body []byte
	var jsonbBytes, headersBytes int
	var problem *string
	err := tx.QueryRow(context.Background(), `SELECT headers, body, octet_length(payload::text), octet_length(headers::text),
		outbox_event_problem(topic, key, payload, headers, body, content_type) FROM outbox_event WHERE id = $1`, id).
		Scan(&headers, &body, &jsonbBytes, &headersBytes, &problem)
	if err != nil {
		t.Fatalf("read the stored row: %v", err)
	}
	if problem != nil {
		t.Fatalf("the stored row has a problem: %s", *problem)
	}
	if !bytes.Equal(body, payload) {
		t.Fatalf("the stored body %q is not the payload written %q", body, payload)
	}
	if size, err := outbox.JSONBTextSize(payload); err != nil || size != jsonbBytes {
		t.Fatalf("Go reckons the stored payload at %d bytes (%v), Postgres stored %d", size, err, jsonbBytes)
	}
	if len(body) > outbox.MaxPayloadBytes || headersBytes > outbox.MaxHeadersBytes {
		t.Fatalf("stored body of %d bytes, headers of %d bytes: over the limits", len(body), headersBytes)
	}
	var m map[string]string
	if err := json.Unmarshal(headers, &m); err != nil {
		t.Fatalf("stored headers are not an object of strings: %v", err)
	}
	table := amqp.Table{"x-jobsd-key": key}
	for k, v := range m {
		if len(k) > 255 || k == "" || outbox.ReservedHeader(k) {
			t.Fatalf("stored header name %q cannot be sent", k)
		}
		table[k] = v
	}
	if err := table.Validate(); err != nil {
		t.Fatalf("stored headers are not a valid AMQP table: %v", err)
	}
}

// headersJSON is {name: value} as JSON for outbox_write. Unlike
// encoding/json, it keeps invalid UTF-8 as it is (Postgres refuses it) instead
// of replacing it with U+FFFD.
func headersJSON(name, value string) string {
	var b strings.Builder
	quote := func(s string) {
		b.WriteByte('"')
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20:
				fmt.Fprintf(&b, `\u%04x`, c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte('{')
	quote(name)
	b.WriteByte(':')
	quote(value)
	b.WriteByte('}')
	return b.String()
}
