package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "github.com/lib/pq"              // database/sql driver "postgres"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// sqlDrivers are the database/sql drivers WriteSQL is tested with: pgx's
// stdlib, the supported one, and lib/pq.
var sqlDrivers = []string{"pgx", "postgres"}

// openSQL opens db through database/sql with driver, closed when t ends.
func openSQL(t *testing.T, driver string, db *testdb.DB) *sql.DB {
	t.Helper()
	sqlDB, err := sql.Open(driver, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sqlDB.Close()) })
	return sqlDB
}

// WriteSQL's signature is pinned: its tx parameter is a *sql.Tx, so that
// outbox.WriteSQL(ctx, db, ...) with a *sql.DB or a *sql.Conn does not compile.
var (
	_ func(context.Context, *sql.Tx, ...outbox.Event) error            = outbox.WriteSQL
	_ func(context.Context, *sql.Tx, ...outbox.Event) ([]int64, error) = outbox.WriteSQLReturningIDs
)

type sqltxArgs struct {
	UserID int64 `json:"user_id"`
}

func (sqltxArgs) Kind() string { return "sqltx_test" }

// TestWriteSQLWithUserAndRiverJob: a user, a River job (through River's
// database/sql driver) and an event written in one *sql.Tx are all there
// after a commit, and none of them after a rollback.
func TestWriteSQLWithUserAndRiverJob(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{false, true} {
		name := map[bool]string{false: "rollback", true: "commit"}[commit]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)
			sqlDB := openSQL(t, "pgx", db)
			client, err := river.NewClient(riverdatabasesql.New(sqlDB), &river.Config{}) // insert-only
			require.NoError(t, err)

			tx, err := sqlDB.BeginTx(ctx, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx.Rollback() })
			var userID int64
			require.NoError(t, tx.QueryRowContext(ctx,
				"INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", "ada@example.com", "Ada").Scan(&userID))
			_, err = client.InsertTx(ctx, tx, sqltxArgs{UserID: userID}, nil)
			require.NoError(t, err)
			ids, err := outbox.WriteSQLReturningIDs(ctx, tx, outbox.Event{
				Topic: "user.signed_up", Key: "ada", Payload: map[string]int64{"user_id": userID},
			})
			require.NoError(t, err)
			require.Len(t, ids, 1)
			if commit {
				require.NoError(t, tx.Commit())
			} else {
				require.NoError(t, tx.Rollback())
			}

			var users, jobs int
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = $1", userID).Scan(&users))
			require.NoError(t, db.Pool.QueryRow(ctx,
				"SELECT count(*) FROM river_job WHERE kind = 'sqltx_test' AND (args->>'user_id')::bigint = $1", userID).Scan(&jobs))
			events := readEvents(t, db, "")
			if !commit {
				require.Zero(t, users)
				require.Zero(t, jobs)
				require.Empty(t, events)
				return
			}
			require.Equal(t, 1, users)
			require.Equal(t, 1, jobs)
			require.Len(t, events, 1)
			require.Equal(t, ids[0], events[0].ID)
			require.Equal(t, "user.signed_up", events[0].Topic)
			require.JSONEq(t, `{"user_id":`+jsonInt(userID)+`}`, events[0].Payload)
		})
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestWriteSQLRoundTrip: events whose text needs escaping in an array literal
// (quotes, backslashes, commas, braces, NULL, empty strings, JSON escapes,
// control characters)
// are stored as given, in order, with every driver.
func TestWriteSQLRoundTrip(t *testing.T) {
	t.Parallel()
	events := []outbox.Event{
		{Topic: `a"b\c`, Key: `k,{}"\`, Payload: map[string]string{"s": `q"u\o{t,e}` + "\n\t"},
			Headers: map[string]string{`h"\`: `v"\,{}`, "empty": ""}},
		{Topic: "NULL", Key: "NULL", Payload: nil},
		{Topic: "t", Key: "", Payload: json.RawMessage(`"\u00e9\"\\\/"`)},
		{Topic: " spaced ", Key: "ключ ☕", Payload: json.RawMessage(" [1, {\"a\" : [ ]}] ")},
		{Topic: "t", Key: `k,{}"\`, Payload: 1e300},
		{Topic: "\t\n\x01\x7f", Key: `\\"\"`, Payload: "{\"a\",NULL}"},
	}
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)
			sqlDB := openSQL(t, driver, db)

			tx, err := sqlDB.BeginTx(ctx, nil)
			require.NoError(t, err)
			ids, err := outbox.WriteSQLReturningIDs(ctx, tx, events...)
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			require.Len(t, ids, len(events))

			rows := readEvents(t, db, "")
			require.Len(t, rows, len(events))
			for i, r := range rows {
				e := events[i]
				require.Equal(t, ids[i], r.ID)
				require.Equal(t, e.Topic, r.Topic)
				require.Equal(t, e.Key, r.Key)
				want, err := json.Marshal(e.Payload)
				if raw, ok := e.Payload.(json.RawMessage); ok {
					want, err = raw, nil
				}
				require.NoError(t, err)
				require.JSONEq(t, string(want), r.Payload)
				var headers map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.Headers), &headers))
				if e.Headers == nil {
					require.Empty(t, headers)
				} else {
					require.Equal(t, e.Headers, headers)
				}
			}
		})
	}
}

// TestWriteSQLInvalidEventKeepsTx: an invalid event is refused with
// ErrInvalidEvent before any SQL, so the *sql.Tx goes on and commits.
func TestWriteSQLInvalidEventKeepsTx(t *testing.T) {
	t.Parallel()
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)
			sqlDB := openSQL(t, driver, db)

			tx, err := sqlDB.BeginTx(ctx, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx.Rollback() })
			for _, invalid := range []outbox.Event{
				{Topic: "", Payload: 1},
				{Topic: "t", Payload: json.RawMessage(`{"a":1,}`)},
				{Topic: "t", Payload: json.RawMessage(`"\u0000"`)},
				{Topic: "t", Payload: 1, Headers: map[string]string{"x-jobsd-key": "k"}},
			} {
				ids, err := outbox.WriteSQLReturningIDs(ctx, tx,
					outbox.Event{Topic: "t", Key: "valid", Payload: 1}, invalid)
				require.ErrorIs(t, err, outbox.ErrInvalidEvent)
				require.ErrorContains(t, err, "outbox: event 1: ")
				require.Nil(t, ids)
				require.ErrorIs(t, outbox.WriteSQL(ctx, tx, invalid), outbox.ErrInvalidEvent)
			}
			require.NoError(t, outbox.WriteSQL(ctx, tx, outbox.Event{Topic: "t", Key: "after", Payload: 1}))
			require.NoError(t, tx.Commit())

			rows := readEvents(t, db, "")
			require.Len(t, rows, 1, "only the event written after the rejected calls")
			require.Equal(t, "after", rows[0].Key)
		})
	}
}

func TestWriteSQLNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	tx, err := openSQL(t, "pgx", db).BeginTx(ctx, nil)
	require.NoError(t, err)
	ids, err := outbox.WriteSQLReturningIDs(ctx, tx)
	require.NoError(t, err)
	require.Nil(t, ids)
	require.NoError(t, outbox.WriteSQL(ctx, tx))
	require.NoError(t, tx.Commit())
	require.Empty(t, readEvents(t, db, ""))
}

// TestWriteSQLSameKeyWaitsForCommit: as with Write, a second *sql.Tx writing
// the same key waits for the first one's commit, so ids follow commit order.
func TestWriteSQLSameKeyWaitsForCommit(t *testing.T) {
	t.Parallel()
	for _, driver := range sqlDrivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := testdb.New(t)
			sqlDB := openSQL(t, driver, db)

			tx1, err := sqlDB.BeginTx(ctx, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx1.Rollback() })
			ids1, err := outbox.WriteSQLReturningIDs(ctx, tx1, outbox.Event{Topic: "t", Key: "K", Payload: 1})
			require.NoError(t, err)

			tx2, err := sqlDB.BeginTx(ctx, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx2.Rollback() })
			var pid2 uint32
			require.NoError(t, tx2.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid2))
			done2 := make(chan writeResult, 1)
			go func() {
				ids, err := outbox.WriteSQLReturningIDs(ctx, tx2, outbox.Event{Topic: "t", Key: "K", Payload: 2})
				done2 <- writeResult{ids, err}
			}()
			waitUntilBlockedOnAdvisoryLock(t, db, pid2, done2)

			require.NoError(t, tx1.Commit())
			r2 := receive(t, done2)
			require.NoError(t, r2.err)
			require.NoError(t, tx2.Commit())
			require.Less(t, ids1[0], r2.ids[0], "ids follow commit order within a key")
			require.Len(t, readEvents(t, db, "WHERE key = 'K'"), 2)
		})
	}
}
