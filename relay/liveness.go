package relay

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/jobsd/jobsd/internal/liveness"
	jsql "github.com/jobsd/jobsd/sql"
)

var releaseDeadSQL = jsql.Statement("relay_release_dead")

// startLiveness registers the run as a live relay (see internal/liveness):
// when a relay dies, another gives back its leases within seconds instead of
// when they end. It returns nil with PollOnly: a session advisory lock needs
// a session of its own, which PgBouncer in transaction mode does not give;
// leases then end with Lease.
func (u *run) startLiveness() *liveness.Process {
	if u.cfg.PollOnly {
		return nil
	}
	return liveness.Start(u.ctx, u.pool.Config().ConnConfig, liveness.Config{
		Kind:    liveness.KindRelay,
		Holder:  u.holder,
		Release: u.releaseDead,
		Logger:  u.log,
	})
}

// releaseDead gives back the leases of dead relay runs and claims at once.
func (u *run) releaseDead(ctx context.Context, tx pgx.Tx, dead []string) (int64, error) {
	tag, err := tx.Exec(ctx, releaseDeadSQL, dead)
	if err != nil {
		return 0, err
	}
	select {
	case u.wantClaim <- struct{}{}:
	default:
	}
	return tag.RowsAffected(), nil
}
