package migrate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/migrate"
)

// TestUpIdempotent: on an empty database Up applies River's and jobsd's
// migrations; a second call applies nothing and the schema is usable.
func TestUpIdempotent(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	applied, err := migrate.Up(t.Context(), db.Pool)
	require.NoError(t, err)
	lines := map[string]bool{}
	for _, a := range applied {
		lines[a.Line] = true
	}
	require.Equal(t, map[string]bool{"river": true, "jobsd": true}, lines)

	again, err := migrate.Up(t.Context(), db.Pool)
	require.NoError(t, err)
	require.Empty(t, again)
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox_event").Scan(&n))
	require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM river_job").Scan(&n))
}
