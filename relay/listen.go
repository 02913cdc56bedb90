package relay

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var listenSQL = jsql.Statement("relay_listen")

// listenLoop holds a dedicated connection (outside the pool) listening on
// jobsd_outbox and wakes the claimer on each notification. While the
// connection is down the relay still polls every PollInterval.
func (u *run) listenLoop() {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for u.ctx.Err() == nil {
		err := u.listen(&b)
		if u.ctx.Err() != nil {
			return
		}
		d := b.next()
		u.log.Warn("LISTEN connection lost; polling until it is back", "err", err,
			"poll", u.cfg.PollInterval, "retry_in", d.Round(time.Millisecond))
		sleep(u.ctx, d)
	}
}

func (u *run) listen(b *backoff) error {
	conn, err := pgx.ConnectConfig(u.ctx, u.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	if _, err := conn.Exec(u.ctx, listenSQL); err != nil {
		return err
	}
	b.reset()
	signal(u.wantClaim) // rows may have arrived while nobody listened
	for {
		if _, err := conn.WaitForNotification(u.ctx); err != nil {
			return err
		}
		u.notified.Add(1)
		signal(u.wantClaim)
	}
}
