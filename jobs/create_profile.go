package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	jsql "github.com/jobsd/jobsd/sql"
)

// CreateProfileArgs creates the profile of user UserID in one downstream
// service. Jobs are unique per (user_id, service): inserting the same pair
// again while one exists returns the existing job.
type CreateProfileArgs struct {
	UserID  int64  `json:"user_id"`
	Service string `json:"service"`
}

// Kind is the job kind stored in river_job.kind.
func (CreateProfileArgs) Kind() string { return "create_profile" }

// InsertOpts makes the job unique by its args.
func (CreateProfileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

var insertProfileSQL = jsql.Statement("profile_insert")

// ProfileWorker works create_profile jobs. Creating the profile and completing
// the job happen in one transaction, and the insert ignores an existing
// profile, so a job worked twice (after a rescue, say) creates one profile.
type ProfileWorker struct {
	river.WorkerDefaults[CreateProfileArgs]
	pool   *pgxpool.Pool
	faults Faults
}

// Work calls the downstream service (simulated: faults, then a profiles row).
func (w *ProfileWorker) Work(ctx context.Context, job *river.Job[CreateProfileArgs]) error {
	if err := w.faults.inject(ctx, job.Args.Service, job.Attempt); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertProfileSQL, job.Args.UserID, job.Args.Service); err != nil {
			return fmt.Errorf("create %s profile of user %d: %w", job.Args.Service, job.Args.UserID, err)
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}
