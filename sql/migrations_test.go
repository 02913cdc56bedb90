package sql_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	jsql "github.com/jobsd/jobsd/sql"
)

// TestMigration005ConsumerInbox runs migration 005 on an inbox written
// before it, with text ids: UUIDs (in any form Postgres accepts) are
// converted, other ids and a second text of one UUID move to
// consumer_inbox_legacy.
func TestMigration005ConsumerInbox(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	ctx := context.Background()
	byVersion := map[int]string{}
	for _, m := range jsql.Migrations() {
		byVersion[m.Version] = m.SQL
	}
	for v := 1; v < 5; v++ {
		if sql, ok := byVersion[v]; ok {
			_, err := db.Pool.Exec(ctx, sql)
			require.NoError(t, err, "migration %d", v)
		}
	}
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO consumer_inbox (queue, message_id, processed_at) VALUES
		  ('q', '6ba7b810-9dad-41d1-80b4-00c04fd430c8', '2026-01-01'),
		  ('q', '6BA7B8109DAD41D180B400C04FD430C8', '2026-01-02'),       -- the same UUID again
		  ('other', '6BA7B810-9DAD-41D1-80B4-00C04FD430C8', '2026-01-02'), -- another queue: kept
		  ('q', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '2026-01-03'),
		  ('q', 'order-42', '2026-01-04'),
		  ('q', '', '2026-01-05'),
		  ('q', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', '2026-01-06')        -- one digit short`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, byVersion[5])
	require.NoError(t, err)

	rows, _ := db.Pool.Query(ctx, "SELECT queue || ' ' || message_id::text FROM consumer_inbox ORDER BY 1")
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{
		"other 6ba7b810-9dad-41d1-80b4-00c04fd430c8",
		"q 6ba7b810-9dad-41d1-80b4-00c04fd430c8",
		"q a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	}, kept)
	rows, _ = db.Pool.Query(ctx, "SELECT queue || ' ' || message_id FROM consumer_inbox_legacy ORDER BY 1")
	moved, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"q ", "q 6BA7B8109DAD41D180B400C04FD430C8", "q a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "q order-42"}, moved)

	var typ string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_name = 'consumer_inbox' AND column_name = 'message_id'`).Scan(&typ))
	require.Equal(t, "uuid", typ)
	var indexed bool
	require.NoError(t, db.Pool.QueryRow(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'consumer_inbox_processed_at_idx')").Scan(&indexed))
	require.True(t, indexed)
}

// TestMigration008PayloadBytes runs migration 008 on an outbox with rows of
// every state: they keep their payload, get no body, and the relay's lease
// query publishes them as before (jsonb's text, application/json). Rows
// written after it keep their bytes.
func TestMigration008PayloadBytes(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	ctx := context.Background()
	byVersion := map[int]string{}
	for _, m := range jsql.Migrations() {
		byVersion[m.Version] = m.SQL
	}
	_, err := db.Pool.Exec(ctx, jsql.Statement("migration_table"))
	require.NoError(t, err)
	for v := 1; v < 8; v++ {
		_, err := db.Pool.Exec(ctx, byVersion[v])
		require.NoError(t, err, "migration %d", v)
	}
	_, err = db.Pool.Exec(ctx, `
		INSERT INTO outbox_event (topic, key, payload, headers, state, published_at) VALUES
		  ('user.signed_up', '1', '{"b": 1, "a": 12345678901234567890.000}', '{"h": "v"}', 'pending', NULL),
		  ('user.signed_up', '2', '"é"', '{}', 'published', now()),
		  ('user.signed_up', '3', '[1, 2]', '{}', 'dead', NULL)`)
	require.NoError(t, err)
	type stored struct{ Payload, Published, ContentType string }
	read := func(published, contentType string) []stored {
		rows, _ := db.Pool.Query(ctx, `SELECT payload::text, `+published+`, `+contentType+` FROM outbox_event ORDER BY id`)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stored])
		require.NoError(t, err)
		return out
	}
	before := read("payload::text", "'application/json'") // what the relay published until 008
	_, err = db.Pool.Exec(ctx, byVersion[8])
	require.NoError(t, err)
	require.Equal(t, before, read("convert_from(coalesce(body, convert_to(payload::text, 'UTF8')), 'UTF8')",
		"coalesce(content_type, 'application/json')"))
	require.Equal(t, `{"a": 12345678901234567890.000, "b": 1}`, before[0].Published)

	var bodies int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(body) + count(content_type) FROM outbox_event").Scan(&bodies))
	require.Zero(t, bodies)

	// The relay's lease query reads old rows as before, and new rows' bytes.
	_, err = db.Pool.Exec(ctx, `SELECT outbox_write('user.signed_up', '4', '{"b":1,  "a":2}')`)
	require.NoError(t, err)
	rows, _ := db.Pool.Query(ctx, jsql.Statement("relay_claim_lease"), "r/1", []int64{1, 4}, 1000.0)
	type leased struct {
		ID               int64
		MessageID, Topic string
		Key              string
		Body             []byte
		ContentType      string
		Headers          []byte
		CreatedAt        time.Time
		Attempt          int32
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[leased])
	require.NoError(t, err)
	require.Len(t, got, 2)
	slices.SortFunc(got, func(a, b leased) int { return int(a.ID - b.ID) })
	require.Equal(t, `{"a": 12345678901234567890.000, "b": 1}`, string(got[0].Body))
	require.Equal(t, `{"b":1,  "a":2}`, string(got[1].Body))
	require.Equal(t, "application/json", got[0].ContentType)
	require.Equal(t, "application/json", got[1].ContentType)
}
