// Package migrate is the CLI's and the tests' name for the public package
// github.com/jobsd/jobsd/migrate, which holds the code: Up applies River's and
// jobsd's migrations.
//
// It may import only the public migrate package.
package migrate

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/migrate"
)

// Applied names one migration applied by Up.
type Applied = migrate.Applied

// Up is migrate.Up.
func Up(ctx context.Context, pool *pgxpool.Pool) ([]Applied, error) { return migrate.Up(ctx, pool) }
