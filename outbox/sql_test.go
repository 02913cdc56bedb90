package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// TestJSONBTextSize: Go's reckoning of jsonb's text form is exact, so that
// MaxPayloadBytes means the same on both sides.
func TestJSONBTextSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	for _, payload := range []string{
		`1`, `-0`, `-0.0`, `0.00e1`, `1.50`, `1e-2`, `1.0e1`, `-12.5e-3`, `0.0001e3`, `123e2`, `1E+3`,
		`1e131071`, `-1e-16383`, `0e-16383`, `0e131072`, `0.000e131075`, `100e-2`,
		`"\u00e9\/\"\\\b\f\n\r\t\u0001\u001f\u007f é \ud83d\ude00"`, `""`,
		`{}`, `[]`, `[ ]`, `{ }`, `{"a":1,"a":22}`, `{"b": {"a":1,"a":[1,2,{"x":null}]}, "a": true}`,
		`[1, [2, [3, []]], {}, false]`, " \n{\"k\" :\t\"v\" } ", `{"é":1,"\u00e9":2}`,
	} {
		t.Run(payload, func(t *testing.T) {
			got, err := outbox.JSONBTextSize([]byte(payload))
			require.NoError(t, err)
			var want int
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT octet_length($1::jsonb::text)", payload).Scan(&want))
			require.Equal(t, want, got)
		})
	}
}

// TestJSONBNumberBoundaries: numbers just inside numeric's range are stored,
// just outside are refused, by Go and by Postgres alike.
func TestJSONBNumberBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	for _, n := range []string{
		"1e131071", "1e131072", "9.9e131071", "99e131070", "0.001e131074", "0.001e131075",
		"1e-16383", "1e-16384", "1.5e-16383", "0.1e-16383", "0e-16383", "0e-16384", "0e131072", "0e99999999",
		"1e1073741822", "0e1073741822", "0e1073741823", "0e-1073741823", "0e00000000000000000005",
		"0." + strings.Repeat("0", 16383), "0." + strings.Repeat("0", 16384),
		"1" + strings.Repeat("0", 131071), "1" + strings.Repeat("0", 131072),
	} {
		name := n
		if len(name) > 30 {
			name = fmt.Sprintf("%s...(%d)", n[:20], len(n))
		}
		t.Run(name, func(t *testing.T) {
			_, goErr := outbox.JSONBTextSize([]byte(n))
			_, pgErr := db.Pool.Exec(ctx, "SELECT $1::jsonb", n)
			require.Equal(t, pgErr == nil, goErr == nil, "Postgres: %v; Go: %v", pgErr, goErr)
		})
	}
}

// sqlWrite calls outbox_write (its text overload, which keeps the bytes as
// outbox.Write does) in a savepoint of tx and returns its error.
func sqlWrite(ctx context.Context, tx pgx.Tx, topic, key, payload, headers string) (int64, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, err
	}
	var id int64
	err = sp.QueryRow(ctx, "SELECT outbox_write($1, $2, $3::text, $4::jsonb)", topic, key, payload, headers).Scan(&id)
	if err != nil {
		_ = sp.Rollback(ctx)
		return 0, err
	}
	return id, sp.Commit(ctx)
}

// TestGoAndSQLLimitsAgree writes boundary events through outbox.Write and the
// SQL function outbox_write: both accept the same ones.
func TestGoAndSQLLimitsAgree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	str := func(n int) string { return `"` + strings.Repeat("a", n-2) + `"` } // a JSON string of n bytes
	// headers of exactly n bytes as jsonb text: {"h": "vvv"} is 9 bytes + the value.
	headersOf := func(n int) map[string]string { return map[string]string{"h": strings.Repeat("v", n-9)} }
	// one number of 131072 digits is 131072 bytes: 7 of them and a string fill the payload.
	numbers := func(extra int) string {
		rest := outbox.MaxPayloadBytes - (2 + 7*131072 + 7*2) // brackets, numbers, separators
		return "[" + strings.Repeat("1e131071, ", 7) + str(rest+extra) + "]"
	}
	tests := []struct {
		name  string
		event outbox.Event
		ok    bool
	}{
		{"topic of max bytes", outbox.Event{Topic: strings.Repeat("é", outbox.MaxTopicBytes/2) + "t", Payload: 1}, true},
		{"topic over max bytes", outbox.Event{Topic: strings.Repeat("é", outbox.MaxTopicBytes/2+1), Payload: 1}, false},
		{"key of max bytes", outbox.Event{Topic: "t", Key: strings.Repeat("k", outbox.MaxKeyBytes), Payload: 1}, true},
		{"key over max bytes", outbox.Event{Topic: "t", Key: strings.Repeat("ключ", 32), Payload: 1}, false},
		{"payload of max bytes", outbox.Event{Topic: "t", Payload: json.RawMessage(str(outbox.MaxPayloadBytes))}, true},
		{"payload over max bytes", outbox.Event{Topic: "t", Payload: json.RawMessage(str(outbox.MaxPayloadBytes + 1))}, false},
		{"payload over max bytes as jsonb text (the body is what counts)", outbox.Event{Topic: "t", Payload: json.RawMessage(numbers(1))}, true},
		{"header name of max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{strings.Repeat("h", outbox.MaxHeaderNameBytes): ""}}, true},
		{"header name over max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{strings.Repeat("h", outbox.MaxHeaderNameBytes+1): ""}}, false},
		{"headers of max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: headersOf(outbox.MaxHeadersBytes)}, true},
		{"headers over max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: headersOf(outbox.MaxHeadersBytes + 1)}, false},
		{"escaped headers of max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{
			"h": strings.Repeat("\n", 100) + strings.Repeat("\x01", 100) + strings.Repeat("v", outbox.MaxHeadersBytes-9-100*2-100*6)}}, true},
		{"escaped headers over max bytes", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{
			"h": strings.Repeat("\n", 100) + strings.Repeat("\x01", 100) + strings.Repeat("v", outbox.MaxHeadersBytes-9-100*2-100*6+1)}}, false},
		{"many headers", outbox.Event{Topic: "t", Payload: 1, Headers: manyHeaders(200, 100)}, true},
		{"header CC", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"CC": "q"}}, false},
		{"header cc", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"cc": "q"}}, true},
		{"header BCC", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"BCC": "q"}}, false},
		{"header x-jobsd-key", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd-key": "k"}}, false},
		{"header x-jobsd-", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd-": "k"}}, false},
		{"header x-jobsd", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd": "k"}}, true},
		{"empty header name", outbox.Event{Topic: "t", Payload: 1, Headers: map[string]string{"": "v"}}, false},
		{"empty topic", outbox.Event{Topic: "", Payload: 1}, false},
		{"number at the limit", outbox.Event{Topic: "t", Payload: json.RawMessage(`[1e131071, 1e-16383]`)}, true},
		{"number over the limit", outbox.Event{Topic: "t", Payload: json.RawMessage(`1e131072`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				goErr := outbox.Write(ctx, tx, tt.event)
				if tt.ok {
					require.NoError(t, goErr)
				} else {
					require.ErrorIs(t, goErr, outbox.ErrInvalidEvent)
				}
				headers, err := json.Marshal(tt.event.Headers)
				require.NoError(t, err)
				if tt.event.Headers == nil {
					headers = []byte("{}")
				}
				payload, err := json.Marshal(tt.event.Payload)
				if raw, ok := tt.event.Payload.(json.RawMessage); ok {
					payload = raw // json.Marshal would compact it
				}
				require.NoError(t, err)
				_, sqlErr := sqlWrite(ctx, tx, tt.event.Topic, tt.event.Key, string(payload), string(headers))
				if tt.ok {
					require.NoError(t, sqlErr)
				} else {
					require.Error(t, sqlErr)
				}
				return nil
			})
			require.NoError(t, err)
		})
	}
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestSQLRefusesUnsendableRows: plain INSERTs of rows the relay could never
// send fail on the trigger outbox_event_sendable with SQLSTATE 23514; outbox_write
// says why with SQLSTATE 22023.
func TestSQLRefusesUnsendableRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	tests := []struct {
		name, topic, key, payload, headers, want string
	}{
		{"headers an array", "t", "k", `1`, `[1,2]`, "headers are not a JSON object"},
		{"headers a string", "t", "k", `1`, `"h"`, "headers are not a JSON object"},
		{"key of 300 bytes", "t", strings.Repeat("k", 300), `1`, `{}`, "key is longer than 255 bytes"},
		{"topic of 256 bytes", strings.Repeat("é", 128), "k", `1`, `{}`, "topic is longer than 255 bytes"},
		{"oversize headers", "t", "k", `1`, `{"h": "` + strings.Repeat("v", outbox.MaxHeadersBytes) + `"}`, "more than the 65536 allowed"},
		{"oversize payload", "t", "k", `"` + strings.Repeat("p", outbox.MaxPayloadBytes) + `"`, `{}`, "more than the 1048576 allowed"},
		{"CC header", "t", "k", `1`, `{"CC": "q"}`, "reserved"},
		{"BCC header", "t", "k", `1`, `{"BCC": ["q"]}`, "reserved"},
		{"x-jobsd-key header", "t", "k", `1`, `{"x-jobsd-key": "other"}`, "reserved"},
		{"long header name", "t", "k", `1`, `{"` + strings.Repeat("h", 256) + `": "v"}`, "longer than 255 bytes"},
		{"long nested header name", "t", "k", `1`, `{"h": [{"` + strings.Repeat("h", 256) + `": 1}]}`, "nested"},
		{"empty header name", "t", "k", `1`, `{"": "v"}`, "header name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := db.Pool.Exec(ctx, "INSERT INTO outbox_event (topic, key, payload, headers) VALUES ($1, $2, $3, $4)",
				tt.topic, tt.key, tt.payload, tt.headers)
			require.Equal(t, "23514", pgCode(err), "check_violation: %v", err)
			require.ErrorContains(t, err, tt.want)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "outbox_event_sendable", pgErr.ConstraintName)

			_, err = db.Pool.Exec(ctx, "SELECT outbox_write($1, $2, $3, $4)", tt.topic, tt.key, tt.payload, tt.headers)
			require.Equal(t, "22023", pgCode(err), "invalid_parameter_value: %v", err)
			require.ErrorContains(t, err, tt.want)
		})
	}

	// What the relay can send is accepted, nested header values included.
	var id int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT outbox_write('t', 'k', '{"id": 42}', '{"n": 1, "b": true, "o": {"x": [1, "y"]}}')`).Scan(&id))
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT outbox_write('t', '', 'null')`).Scan(&id))
	_, err := db.Pool.Exec(ctx, `INSERT INTO outbox_event (topic, payload) VALUES ('t', '1')`)
	require.NoError(t, err)
}

// TestOutboxWriteSameKeyCommitOrder: outbox_write takes the same per-key lock
// as outbox.Write before its row gets an id, so a second writer of the key
// (SQL or Go) waits for the first to commit and ids follow commit order.
func TestOutboxWriteSameKeyCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)

	tx1, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx1.Rollback(ctx) })
	id1, err := sqlWrite(ctx, tx1, "t", "K", `1`, `{}`)
	require.NoError(t, err)

	// A second SQL writer waits for the first.
	tx2, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx2.Rollback(ctx) })
	var pid2 uint32
	require.NoError(t, tx2.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2))
	done2 := make(chan writeResult, 1)
	go func() {
		id, err := sqlWrite(ctx, tx2, "t", "K", `2`, `{}`)
		done2 <- writeResult{[]int64{id}, err}
	}()
	waitUntilBlockedOnAdvisoryLock(t, db, pid2, done2)

	// A Go writer of the key waits too.
	tx3, pid3, done3 := writeInBackground(t, db, outbox.Event{Topic: "t", Key: "K", Payload: 3})
	waitUntilBlockedOnAdvisoryLock(t, db, pid3, done3)

	require.NoError(t, tx1.Commit(ctx))
	// Whichever of T2 and T3 gets the lock next commits before the other one
	// can write.
	var first, second <-chan writeResult
	var firstTx, secondTx pgx.Tx
	select {
	case r := <-done2:
		first, second, firstTx, secondTx = chanOf(r), done3, tx2, tx3
	case r := <-done3:
		first, second, firstTx, secondTx = chanOf(r), done2, tx3, tx2
	}
	r1 := receive(t, first)
	require.NoError(t, r1.err)
	require.NoError(t, firstTx.Commit(ctx))
	r2 := receive(t, second)
	require.NoError(t, r2.err)
	require.NoError(t, secondTx.Commit(ctx))

	require.Less(t, id1, r1.ids[0])
	require.Less(t, r1.ids[0], r2.ids[0], "ids follow commit order within a key")
	require.Len(t, readEvents(t, db, "WHERE key = 'K'"), 3)
}

func chanOf(r writeResult) <-chan writeResult {
	c := make(chan writeResult, 1)
	c <- r
	return c
}

// TestWriteConcurrentKeyOrdersNeverDeadlock: transactions that write the same
// keys in different orders, each in one Write call, never deadlock (Write
// locks the keys of a call in sorted order).
func TestWriteConcurrentKeyOrdersNeverDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	keys := []string{"a", "b", "c", "d"}
	const writers, rounds = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				events := make([]outbox.Event, len(keys))
				for i, k := range keys {
					events[i] = outbox.Event{Topic: "t", Key: k, Payload: w}
				}
				if w%2 == 0 { // half the writers use the reverse order, the rest a random one
					for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
						events[i], events[j] = events[j], events[i]
					}
				} else {
					rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
				}
				errs <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, events...) })
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "SQLSTATE %s", pgCode(err))
	}
	require.Len(t, readEvents(t, db, ""), writers*rounds*len(keys))
}

// TestSQLOldRowsStillUpdatable: a row the checks would refuse but that was
// written before them (here: with the trigger disabled) can still be updated,
// as the relay does to lease it and mark it dead; only INSERTs are checked.
func TestSQLOldRowsStillUpdatable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	var id int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "ALTER TABLE outbox_event DISABLE TRIGGER outbox_event_sendable"); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO outbox_event (topic, key, headers) VALUES ('t', 'k', '{"CC": "q"}') RETURNING id`).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "ALTER TABLE outbox_event ENABLE TRIGGER outbox_event_sendable")
		return err
	})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "UPDATE outbox_event SET claimed_by = 'r', claimed_until = now() WHERE id = $1", id)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "UPDATE outbox_event SET state = 'dead', attempt = 1, claimed_by = NULL WHERE id = $1", id)
	require.NoError(t, err)
}

// TestWriteDeepNesting: the deepest JSON that encoding/json accepts (10000
// levels) is stored by Postgres too.
func TestWriteDeepNesting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	deep := strings.Repeat(`[{"a":`, 5000) + "1" + strings.Repeat("}]", 5000)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Event{Topic: "t", Payload: json.RawMessage(deep)})
	})
	require.NoError(t, err)
	got, err := outbox.JSONBTextSize([]byte(deep))
	require.NoError(t, err)
	var want int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT octet_length(payload::text) FROM outbox_event").Scan(&want))
	require.Equal(t, want, got)
}
