package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/jobsd/jobsd/internal/liveness"
	"github.com/jobsd/jobsd/internal/logging"
	jsql "github.com/jobsd/jobsd/sql"
)

var rescueDeadSQL = jsql.Statement("jobs_rescue_dead")

// workerID is the River client ID of this process, unique among live
// processes: River records it in river_job.attempted_by, and liveness
// registers it, so that the jobs a killed process was running are rescued
// within seconds (see startLiveness).
func workerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "jobsd"
	}
	if len(host) > 60 {
		host = host[:60]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// startLiveness registers this process's River client as a live worker: when
// another jobsd process dies, this one rescues the jobs it was running a few
// seconds later (liveness.Grace), as River's rescuer would after
// RescueStuckJobsAfter. Not with PollOnly (PgBouncer in transaction mode has
// no session for the lock): River's rescuer alone then rescues.
func (s *Server) startLiveness(ctx context.Context) *liveness.Process {
	if s.cfg.PollOnly {
		return nil
	}
	return liveness.Start(ctx, s.pool.Config().ConnConfig, liveness.Config{
		Kind:   liveness.KindWorker,
		Holder: s.river.ID(),
		Release: func(ctx context.Context, tx pgx.Tx, dead []string) (int64, error) {
			tag, err := tx.Exec(ctx, rescueDeadSQL, dead)
			return tag.RowsAffected(), err
		},
		Logger: s.cfg.Logger.With(logging.KeyComponent, "rescuer"),
	})
}
