// Package migrate brings a database to the schema jobsd needs: River's tables
// (through rivermigrate) and jobsd's own (outbox_event, the demo app's tables,
// consumer_inbox, ...; embedded in package sql). It is what `jobsd migrate`
// runs, for applications that embed jobsd and migrate from Go at start:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil { ... }
//	if _, err := migrate.Up(ctx, pool); err != nil { ... }
//
// Up is idempotent and takes an advisory lock, so every replica of an
// application may call it at start. The database must exist (`jobsd migrate`
// also creates it). An application with its own migration tool runs `jobsd
// migrate` before it instead; the SQL files are in sql/migrations and River's
// are applied by `river migrate-up`, but Up applies both in the right order.
//
// It may import pgx, River's rivermigrate and the sql package.
package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	jsql "github.com/jobsd/jobsd/sql"
)

// lockKey is the advisory lock taken for the duration of a migration.
const lockKey int64 = 0x6a6f6273_64_6d67 // "jobsd" "mg"

// Applied names one migration applied by Up.
type Applied struct {
	Line    string `json:"line"` // "river" or "jobsd"
	Version int    `json:"version"`
	Name    string `json:"name"`
}

// Up brings the schema to the newest version and returns what it applied;
// nothing when the schema is current. A session advisory lock serialises
// concurrent callers. Each River version is applied in its own transaction (as
// rivermigrate does; some of River's versions cannot share one), then all of
// jobsd's pending migrations in one transaction.
func Up(ctx context.Context, pool *pgxpool.Pool) ([]Applied, error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, jsql.Statement("migration_lock"), lockKey); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), jsql.Statement("migration_unlock"), lockKey) //nolint:errcheck

	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	var applied []Applied
	for _, v := range res.Versions {
		applied = append(applied, Applied{Line: "river", Version: v.Version, Name: v.Name})
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ours, err := upOurs(ctx, tx)
		applied = append(applied, ours...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

func upOurs(ctx context.Context, tx pgx.Tx) ([]Applied, error) {
	if _, err := tx.Exec(ctx, jsql.Statement("migration_table")); err != nil {
		return nil, fmt.Errorf("create jobsd_migration: %w", err)
	}
	done := map[int]bool{}
	rows, err := tx.Query(ctx, jsql.Statement("migration_versions"))
	if err != nil {
		return nil, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		done[v] = true
	}
	var applied []Applied
	for _, m := range jsql.Migrations() {
		if done[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("jobsd migration %03d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, jsql.Statement("migration_record"), m.Version, m.Name); err != nil {
			return nil, err
		}
		applied = append(applied, Applied{Line: "jobsd", Version: m.Version, Name: m.Name})
	}
	return applied, nil
}
