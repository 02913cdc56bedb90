package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// exampleDB is the database of the runnable examples, which take no
// *testing.T; TestMain creates it.
var exampleDB *testdb.DB

func TestMain(m *testing.M) {
	db, cleanup, err := testdb.NewMain()
	if err != nil {
		os.Exit(testdb.ExitUnreachable(err))
	}
	exampleDB = db
	code := m.Run()
	cleanup() // before the leak check: it closes the example pool
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// fixture reads testdata/outbox/name at the top of the repository.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "outbox", name))
	require.NoError(t, err)
	return b
}

// eventRow is an outbox_event row as the relay will read it.
type eventRow struct {
	ID      int64
	Topic   string
	Key     string
	Payload string
	Headers string
	State   string
	Attempt int
}

func readEvents(t *testing.T, db *testdb.DB, where string, args ...any) []eventRow {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		"SELECT id, topic, key, payload::text, headers::text, state, attempt FROM outbox_event "+where+" ORDER BY id", args...)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[eventRow])
	require.NoError(t, err)
	return events
}

func TestWriteRejectsInvalidEvents(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)

	oversize := []byte(`"` + strings.Repeat("a", outbox.MaxPayloadBytes) + `"`) // valid JSON, 1 MiB + 2 bytes

	tests := []struct {
		name  string
		event outbox.Event
		want  string // in the error message
	}{
		{"empty topic", outbox.Event{Topic: "", Payload: 1}, "topic is empty"},
		{"topic too long", outbox.Event{Topic: strings.Repeat("t", outbox.MaxTopicBytes+1), Payload: 1}, "topic is longer"},
		{"topic with NUL", outbox.Event{Topic: "user.\x00signed_up", Payload: 1}, "topic contains a NUL byte"},
		{"topic not UTF-8", outbox.Event{Topic: "user.\xffsigned_up", Payload: 1}, "topic is not valid UTF-8"},
		{"key too long", outbox.Event{Topic: "t", Key: strings.Repeat("k", outbox.MaxKeyBytes+1), Payload: 1}, "key is longer"},
		{"key with NUL", outbox.Event{Topic: "t", Key: "42\x00", Payload: 1}, "key contains a NUL byte"},
		{"key not UTF-8", outbox.Event{Topic: "t", Key: "4\xc3\x282", Payload: 1}, "key is not valid UTF-8"},
		{"empty header name", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"": "v"}}, "header name is empty"},
		{"header value with NUL", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h": "v\x00"}}, "NUL byte"},
		{"header value not UTF-8", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h": "\xff"}}, "not valid UTF-8"},
		{"truncated JSON", outbox.Event{Topic: "t", Payload: fixture(t, "bad_truncated.json")}, "not valid JSON"},
		{"trailing comma", outbox.Event{Topic: "t", Payload: json.RawMessage(fixture(t, "bad_trailing_comma.json"))}, "not valid JSON"},
		{"single quotes", outbox.Event{Topic: "t", Payload: fixture(t, "bad_single_quotes.json")}, "not valid JSON"},
		{"two documents", outbox.Event{Topic: "t", Payload: fixture(t, "bad_two_documents.json")}, "not valid JSON"},
		{"empty payload", outbox.Event{Topic: "t", Payload: fixture(t, "bad_empty.json")}, "not valid JSON"},
		{"nil raw payload", outbox.Event{Topic: "t", Payload: json.RawMessage(nil)}, "not valid JSON"},
		{"NUL escape", outbox.Event{Topic: "t", Payload: fixture(t, "bad_nul_escape.json")}, `\u0000`},
		{"NUL in struct string", outbox.Event{Topic: "t", Payload: struct{ Name string }{"Ada\x00"}}, `\u0000`},
		{"payload not UTF-8", outbox.Event{Topic: "t", Payload: fixture(t, "bad_invalid_utf8.json")}, "UTF-8"},
		{"payload too large", outbox.Event{Topic: "t", Payload: oversize}, "more than the 1048576 allowed"},
		{"whitespace beyond the maximum size", outbox.Event{Topic: "t", Payload: append(oversize[:outbox.MaxPayloadBytes-1:outbox.MaxPayloadBytes-1], '"', ' ')},
			"payload is 1048577 bytes, more than the 1048576 allowed"},
		{"opaque payload not bytes", outbox.Event{Topic: "t", ContentType: "application/x-protobuf", Payload: "text"},
			`payload of content type "application/x-protobuf" must be a []byte, got string`},
		{"opaque payload too large", outbox.Event{Topic: "t", ContentType: "application/octet-stream", Payload: oversize},
			"more than the 1048576 allowed"},
		{"content type too long", outbox.Event{Topic: "t", ContentType: strings.Repeat("c", 256), Payload: []byte{1}}, "content type is longer"},
		{"content type with NUL", outbox.Event{Topic: "t", ContentType: "a/\x00", Payload: []byte{1}}, "content type contains a NUL byte"},
		{"JSON content type with bytes that are not JSON", outbox.Event{Topic: "t", ContentType: "application/problem+json", Payload: []byte{1}},
			"not valid JSON"},
		{"payload not encodable", outbox.Event{Topic: "t", Payload: make(chan int)}, "cannot be encoded as JSON"},
		{"payload NaN", outbox.Event{Topic: "t", Payload: map[string]float64{"x": nan()}}, "cannot be encoded as JSON"},
		{"lone high surrogate", outbox.Event{Topic: "t", Payload: fixture(t, "bad_lone_high_surrogate.json")}, "high surrogate"},
		{"lone low surrogate", outbox.Event{Topic: "t", Payload: fixture(t, "bad_lone_low_surrogate.json")}, "low surrogate"},
		{"high surrogate then other", outbox.Event{Topic: "t", Payload: fixture(t, "bad_high_surrogate_then_other.json")}, "not followed by a low surrogate"},
		{"two high surrogates", outbox.Event{Topic: "t", Payload: json.RawMessage(`"\ud800\udbff"`)}, "follows another high surrogate"},
		{"number too large", outbox.Event{Topic: "t", Payload: fixture(t, "bad_number_too_large.json")}, "out of the range of Postgres numeric"},
		{"number too small", outbox.Event{Topic: "t", Payload: fixture(t, "bad_number_too_small.json")}, "out of the range of Postgres numeric"},
		{"number with 131073 digits", outbox.Event{Topic: "t", Payload: json.RawMessage("1" + strings.Repeat("0", 131072))}, "out of the range"},
		{"zero with a huge exponent", outbox.Event{Topic: "t", Payload: json.RawMessage("0e1073741823")}, "out of the range"},
		{"json.Number out of range", outbox.Event{Topic: "t", Payload: map[string]json.Number{"n": "1e131072"}}, "out of the range"},
		{"header name too long", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{strings.Repeat("h", outbox.MaxHeaderNameBytes+1): "v"}}, "is longer than 255 bytes"},
		{"header name CC", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"CC": "queue"}}, "reserved"},
		{"header name BCC", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"BCC": "queue"}}, "reserved"},
		{"header name x-jobsd-key", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd-key": "k"}}, "reserved"},
		{"header name x-jobsd-other", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd-other": "k"}}, "reserved"},
		{"header name with NUL", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h\x00": "v"}}, "NUL byte"},
		{"header name not UTF-8", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h\xff": "v"}}, "not valid UTF-8"},
		{"header value too large", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"h": strings.Repeat("v", outbox.MaxHeadersBytes)}}, "more than the 65536 allowed"},
		{"headers too large together", outbox.Event{Topic: "t", Payload: 1, Headers: manyHeaders(300, 250)}, "more than the 65536 allowed"},
	}
	var ran atomic.Int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ran.Add(1)
			ctx := context.Background()
			validKey, afterKey := "valid/"+tt.name, "after/"+tt.name
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				ids, err := outbox.WriteReturningIDs(ctx, tx,
					outbox.Event{Topic: "t", Key: validKey, Payload: json.RawMessage(`{"ok":true}`)},
					tt.event,
				)
				require.ErrorIs(t, err, outbox.ErrInvalidEvent)
				require.ErrorContains(t, err, "event 1")
				require.ErrorContains(t, err, tt.want)
				require.Nil(t, ids)
				require.ErrorIs(t, outbox.Write(ctx, tx, tt.event), outbox.ErrInvalidEvent)

				// The transaction is not poisoned: the application can go on.
				if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
					return err
				}
				return outbox.Write(ctx, tx, outbox.Event{Topic: "t", Key: afterKey, Payload: 1})
			})
			require.NoError(t, err)
			rows := readEvents(t, db, "WHERE key = ANY($1)", []string{validKey, afterKey})
			require.Len(t, rows, 1, "only the event written after the rejected call")
			require.Equal(t, afterKey, rows[0].Key)
		})
	}
	t.Cleanup(func() {
		// Nothing but the one event per case written after the rejection.
		require.Len(t, readEvents(t, db, ""), int(ran.Load()))
	})
}

// manyHeaders returns n headers with values of size bytes.
func manyHeaders(n, size int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("h%d", i)] = strings.Repeat("v", size)
	}
	return h
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

type signedUp struct {
	UserID int64     `json:"user_id"`
	Email  string    `json:"email"`
	At     time.Time `json:"at"`
}

func TestWriteValidEvents(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	atJSON, _ := json.Marshal(at)
	exactlyMax := []byte(`"` + strings.Repeat("a", outbox.MaxPayloadBytes-2) + `"`)

	tests := []struct {
		name        string
		event       outbox.Event
		wantPayload string // JSON, compared semantically
	}{
		{"bytes", outbox.Event{Topic: "user.signed_up", Payload: fixture(t, "good_user.json")}, string(fixture(t, "good_user.json"))},
		{"raw message", outbox.Event{Topic: "user.signed_up", Payload: json.RawMessage(`{"user_id":42}`)}, `{"user_id": 42}`},
		{"struct", outbox.Event{Topic: "user.signed_up", Payload: signedUp{UserID: 42, Email: "ada@example.com", At: at}},
			`{"user_id":42,"email":"ada@example.com","at":` + string(atJSON) + `}`},
		{"pointer to struct", outbox.Event{Topic: "user.signed_up", Payload: &signedUp{UserID: 7}},
			`{"user_id":7,"email":"","at":"0001-01-01T00:00:00Z"}`},
		{"map", outbox.Event{Topic: "t", Payload: map[string]any{"n": 1, "s": "x"}}, `{"n":1,"s":"x"}`},
		{"string", outbox.Event{Topic: "t", Payload: "plain text"}, `"plain text"`},
		{"nil payload", outbox.Event{Topic: "t", Payload: nil}, `null`},
		{"empty key", outbox.Event{Topic: "t", Key: "", Payload: 1}, `1`},
		{"unicode topic and key", outbox.Event{Topic: "usuário.criado", Key: "ключ-42", Payload: 1}, `1`},
		{"longest topic and key", outbox.Event{Topic: strings.Repeat("t", outbox.MaxTopicBytes),
			Key: strings.Repeat("k", outbox.MaxKeyBytes), Payload: 1}, `1`},
		{"escaped backslash before u0000", outbox.Event{Topic: "t", Payload: fixture(t, "good_escaped_backslash.json")},
			string(fixture(t, "good_escaped_backslash.json"))},
		{"struct string with backslash u0000", outbox.Event{Topic: "t", Payload: struct{ S string }{`C:\u0000`}},
			`{"S": "C:\\u0000"}`},
		{"payload of exactly the maximum size", outbox.Event{Topic: "t", Payload: exactlyMax}, string(exactlyMax)},
		{"surrogate pair and numeric limits", outbox.Event{Topic: "t", Payload: fixture(t, "good_surrogate_pair_and_numeric_limits.json")},
			""}, // compared by Postgres: encoding/json cannot hold 1e131071
		{"numbers that jsonb's text makes longer than the maximum", outbox.Event{Topic: "t", Payload: fixture(t, "good_numbers_expand_over_limit.json")}, ""},
		{"compact JSON that jsonb's text makes longer than the maximum", outbox.Event{Topic: "t", Payload: compactMax()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.event.Key == "" && tt.name != "empty key" {
				tt.event.Key = tt.name
			}
			var ids []int64
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
				ids, err = outbox.WriteReturningIDs(ctx, tx, tt.event)
				return err
			})
			require.NoError(t, err)
			require.Len(t, ids, 1)
			rows := readEvents(t, db, "WHERE id = $1", ids[0])
			require.Len(t, rows, 1)
			got := rows[0]
			require.Equal(t, tt.event.Topic, got.Topic)
			require.Equal(t, tt.event.Key, got.Key)
			if tt.wantPayload == "" {
				var same bool
				require.NoError(t, db.Pool.QueryRow(ctx, "SELECT payload = $2::jsonb FROM outbox_event WHERE id = $1",
					ids[0], string(tt.event.Payload.([]byte))).Scan(&same))
				require.True(t, same)
			} else {
				require.JSONEq(t, tt.wantPayload, got.Payload)
			}
			require.JSONEq(t, `{}`, got.Headers)
			require.Equal(t, "pending", got.State)
			require.Zero(t, got.Attempt)
			// The body is the bytes written, or encoding/json's bytes of the value.
			want, ok := tt.event.Payload.([]byte)
			if raw, isRaw := tt.event.Payload.(json.RawMessage); isRaw {
				want, ok = raw, true
			}
			if !ok {
				want, err = json.Marshal(tt.event.Payload)
				require.NoError(t, err)
			}
			var body []byte
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT body FROM outbox_event WHERE id = $1", ids[0]).Scan(&body))
			require.Equal(t, want, body)
		})
	}
}

// compactMax is a JSON array of MaxPayloadBytes bytes, without spaces:
// jsonb's text of it ("1, 1, ...") is half as long again.
func compactMax() []byte {
	n := (outbox.MaxPayloadBytes - 1) / 2 // [1,1,...,1]: 2 bytes per element, plus one
	b := append([]byte("["), []byte(strings.Repeat("1,", n-1))...)
	b = append(b, "1]"...)
	return append(b, strings.Repeat(" ", outbox.MaxPayloadBytes-len(b))...)
}

func TestWriteHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	headers := map[string]string{
		"traceparent":  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"content-lang": "pt-BR",
		"unicode":      "ключ ☕",
		"empty":        "",
		"quote\"name":  `va"lue`,
	}
	var ids []int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
		ids, err = outbox.WriteReturningIDs(ctx, tx, outbox.Event{Topic: "t", Key: "k", Payload: 1, Headers: headers})
		return err
	})
	require.NoError(t, err)

	var raw []byte
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT headers FROM outbox_event WHERE id = $1", ids[0]).Scan(&raw))
	var got map[string]string
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, headers, got)
}

func TestWriteSeveralEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	events := []outbox.Event{
		{Topic: "a", Key: "k2", Payload: json.RawMessage(`{"i":0}`)},
		{Topic: "b", Key: "k1", Payload: map[string]int{"i": 1}},
		{Topic: "c", Key: "k2", Payload: []byte(`{"i":2}`)},
		{Topic: "d", Key: "", Payload: struct {
			I int `json:"i"`
		}{3}},
	}
	var ids []int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) (err error) {
		ids, err = outbox.WriteReturningIDs(ctx, tx, events...)
		return err
	})
	require.NoError(t, err)
	require.Len(t, ids, len(events))
	for i := 1; i < len(ids); i++ {
		require.Greater(t, ids[i], ids[i-1], "ids increase in the order of the events")
	}

	rows := readEvents(t, db, "")
	require.Len(t, rows, len(events))
	for i, r := range rows {
		require.Equal(t, ids[i], r.ID)
		require.Equal(t, events[i].Topic, r.Topic)
		require.Equal(t, events[i].Key, r.Key)
		var p struct{ I int }
		require.NoError(t, json.Unmarshal([]byte(r.Payload), &p))
		require.Equal(t, i, p.I)
	}
}

func TestWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		ids, err := outbox.WriteReturningIDs(ctx, tx)
		require.Nil(t, ids)
		if err != nil {
			return err
		}
		return outbox.Write(ctx, tx)
	})
	require.NoError(t, err)
	require.Empty(t, readEvents(t, db, ""))
}

func TestWriteRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Write(ctx, tx, outbox.Event{Topic: "t", Key: "k", Payload: 1}))
	require.NoError(t, tx.Rollback(ctx))
	require.Empty(t, readEvents(t, db, ""))
}

// TestWriteOnConn checks Write with a transaction of a single connection, not
// a pool.
func TestWriteOnConn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Event{Topic: "t", Key: "k", Payload: 1})
	})
	require.NoError(t, err)
	require.Len(t, readEvents(t, db, ""), 1)
}

// TestWriteNotifiesAfterCommit checks the trigger the relay waits on: a
// notification on channel jobsd_outbox once the writing transaction commits,
// while a relay waits (a row in outbox_relay_waiting), and none otherwise.
func TestWriteNotifiesAfterCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	listener, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer listener.Close(ctx)
	_, err = listener.Exec(ctx, "LISTEN jobsd_outbox")
	require.NoError(t, err)
	write := func() {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return outbox.Write(ctx, tx,
				outbox.Event{Topic: "t", Key: "a", Payload: 1},
				outbox.Event{Topic: "t", Key: "b", Payload: 2},
			)
		}))
	}

	// No relay waits: no notification. A query on the listener after the
	// commit receives any notification sent before it.
	write()
	_, err = listener.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	expired, cancel := context.WithTimeout(ctx, time.Millisecond)
	_, err = listener.WaitForNotification(expired)
	cancel()
	require.Error(t, err, "no relay waits: writers send no NOTIFY")

	_, err = db.Pool.Exec(ctx, "INSERT INTO outbox_relay_waiting (holder) VALUES ('relay/test')")
	require.NoError(t, err)
	write()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second) // a bound for a broken build, not a timing assertion
	defer cancel()
	n, err := listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, "jobsd_outbox", n.Channel)
}

// Write's signature is pinned: its tx parameter is a pgx.Tx, not an
// interface that a pool also satisfies.
var (
	_ func(context.Context, pgx.Tx, ...outbox.Event) error            = outbox.Write
	_ func(context.Context, pgx.Tx, ...outbox.Event) ([]int64, error) = outbox.WriteReturningIDs
)

// TestWriteTakesATransaction: neither a pool nor a connection is a pgx.Tx, so
// outbox.Write(ctx, pool, ...) does not compile.
func TestWriteTakesATransaction(t *testing.T) {
	t.Parallel()
	tx := reflect.TypeFor[pgx.Tx]()
	require.False(t, reflect.TypeFor[*pgxpool.Pool]().Implements(tx))
	require.False(t, reflect.TypeFor[*pgx.Conn]().Implements(tx))
	require.True(t, reflect.TypeFor[*pgxpool.Tx]().Implements(tx))
}
