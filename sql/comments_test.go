package sql_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
)

// uncommentedSQL lists the objects of jobsd's schema in public that have no
// COMMENT: tables (and views), their columns, their indexes (but those of a
// primary key or unique constraint), functions and triggers. River's
// (river_*) are River's, and extensions' objects are theirs.
const uncommentedSQL = `
WITH ours AS (
    SELECT c.oid, c.relname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.relname NOT LIKE 'river\_%'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
)
SELECT 'table ' || relname FROM ours
WHERE obj_description(oid, 'pg_class') IS NULL
UNION ALL
SELECT 'column ' || o.relname || '.' || a.attname
FROM ours o JOIN pg_attribute a ON a.attrelid = o.oid
WHERE a.attnum > 0 AND NOT a.attisdropped AND col_description(o.oid, a.attnum) IS NULL
UNION ALL
SELECT 'index ' || i.relname
FROM ours o JOIN pg_index x ON x.indrelid = o.oid JOIN pg_class i ON i.oid = x.indexrelid
WHERE NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.oid)
  AND obj_description(i.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname NOT LIKE 'river\_%'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || o.relname
FROM pg_trigger t JOIN ours o ON o.oid = t.tgrelid
WHERE NOT t.tgisinternal AND obj_description(t.oid, 'pg_trigger') IS NULL
ORDER BY 1`

// TestSchemaCommented fails when a table, column, index, function or trigger of
// jobsd's own schema has no COMMENT (migration 007 wrote them): DBAs read
// the schema with \d+ and \df+, and a migration that adds an object must
// say what it is for in the catalog too.
func TestSchemaCommented(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()

	rows, _ := db.Pool.Query(ctx, uncommentedSQL)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, missing, "objects without COMMENT ON (add them in a migration)")

	// The check sees what it must: jobsd's tables, and not River's.
	var ours, river int
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE relname IN ('outbox_event', 'outbox_relay_waiting', 'users', 'profiles',
		                                          'consumer_inbox', 'consumer_inbox_legacy', 'analytics_counts', 'jobsd_migration')
		                        AND obj_description(oid, 'pg_class') IS NOT NULL),
		       count(*) FILTER (WHERE relname LIKE 'river\_%')
		FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`).Scan(&ours, &river))
	require.Equal(t, 8, ours)
	require.Positive(t, river, "River's tables exist and are left to River")

	// A new table without comments is caught.
	_, err = db.Pool.Exec(ctx, `CREATE TABLE jobsd_new_thing (a int PRIMARY KEY, b int);
		COMMENT ON TABLE jobsd_new_thing IS 'x'; COMMENT ON COLUMN jobsd_new_thing.a IS 'x';
		CREATE INDEX jobsd_new_thing_b_idx ON jobsd_new_thing (b)`)
	require.NoError(t, err)
	rows, _ = db.Pool.Query(ctx, uncommentedSQL)
	missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"column jobsd_new_thing.b", "index jobsd_new_thing_b_idx"}, missing)
}
