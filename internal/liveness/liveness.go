// Package liveness tells live jobsd processes from dead ones within seconds, so
// that what a process killed with -9 held (a relay's leases, a worker's
// running jobs) is given back at once instead of when a lease or River's
// RescueStuckJobsAfter runs out.
//
// A process registers under a holder name (the relay's lease holder, the River
// client ID) in jobsd_process, and holds a session advisory lock on that name
// on a connection of its own, refreshing its row every Heartbeat. When the
// process dies its connection closes and the lock is free at once. Every
// Heartbeat, each process also looks for processes of its kind whose lock is
// free and whose row is older than Grace: those are dead, and it gives back
// their work (Config.Release) in the transaction that deletes their row (see
// sql/migrations/009_liveness.sql).
//
// Both conditions are needed: the lock alone is free for a moment whenever a
// live process reconnects (after a database restart or a killed backend), and
// seen_at alone would take a lease's time to tell. A process reaps others only
// after its own connection has been up for Settle, so that after a database
// restart the processes still reconnecting are not taken for dead. A live
// process wrongly found dead (its own connection down for longer than Grace
// while others' worked) is warned about in its log; its work may then run
// twice, which jobsd's at-least-once delivery allows.
package liveness

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	registerSQL   = jsql.Statement("liveness_register")
	heartbeatSQL  = jsql.Statement("liveness_heartbeat")
	unregisterSQL = jsql.Statement("liveness_unregister")
	reapSQL       = jsql.Statement("liveness_reap")
)

const (
	// Heartbeat is how often a process refreshes its row and looks for dead
	// processes of its kind.
	Heartbeat = time.Second
	// Grace is how long a process's row must go unrefreshed, with its lock
	// free, before it counts as dead.
	Grace = 5 * time.Second
	// Settle is how long a process's own connection must have been up before
	// it reaps others: longer than others take to reconnect after a database
	// restart.
	Settle = Grace + 2*Heartbeat

	// statementTimeout bounds each statement; a hung connection is replaced.
	statementTimeout = 10 * time.Second
)

// Kinds of process.
const (
	KindRelay  = "relay"
	KindWorker = "worker"
)

// Config configures a Process.
type Config struct {
	// Kind is KindRelay or KindWorker: a process reaps processes of its kind.
	Kind string
	// Holder names the process; unique among live processes.
	Holder string
	// Release gives back the work of dead processes of the kind, in the
	// transaction that deleted their rows; it returns how much it gave back.
	Release func(ctx context.Context, tx pgx.Tx, dead []string) (int64, error)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Process is a live registration. Start makes one, Stop ends it.
type Process struct {
	cfg    Config
	connCf *pgx.ConnConfig
	log    *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	conn *pgx.Conn // nil while down; the loop's only
}

// Start registers the process and keeps it registered, reconnecting as
// needed, until Stop. It returns once the first registration is done or
// failed: start it before the process takes any work. A database that cannot
// be reached is retried every Heartbeat (and logged once per outage).
func Start(ctx context.Context, connConfig *pgx.ConnConfig, cfg Config) *Process {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Process{
		cfg:    cfg,
		connCf: connConfig.Copy(),
		log:    log.With("holder", cfg.Holder),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	var up time.Time
	if err := p.beat(ctx, &up); err != nil {
		p.log.Warn("liveness: cannot register this process; retrying every second (until then, what it holds if it dies waits for its lease or River's rescuer)",
			"err", err)
	}
	go p.loop(ctx, up)
	return p
}

// Stop ends the registration: the row is deleted and the lock released. Call
// it only once the process gave back what it held itself (a relay released
// its leases, River stopped its jobs); until then, another process may give
// it back on its behalf once its lock is free.
func (p *Process) Stop(ctx context.Context) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	if _, err := p.conn.Exec(ctx, unregisterSQL, p.cfg.Holder); err != nil {
		p.log.Debug("liveness: cannot delete this process's row; others reap it after the grace", "err", err)
	}
	_ = p.conn.Close(ctx)
	p.conn = nil
}

// Abandon ends the registration without deleting the row, for a process
// that could not give back what it holds (River did not stop its jobs): the
// lock goes with the connection, and another process gives back its work
// after Grace.
func (p *Process) Abandon() {
	p.cancel()
	<-p.done
	p.drop()
}

// loop refreshes the registration every Heartbeat; up is when the current
// connection took the lock (zero: none).
func (p *Process) loop(ctx context.Context, up time.Time) {
	defer close(p.done)
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	failing := up.IsZero()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := p.beat(ctx, &up)
		if err != nil && !up.IsZero() && ctx.Err() == nil {
			// The connection broke (a restart, a killed backend): register
			// again on a new one at once, so that the row stays fresh.
			p.drop()
			up = time.Time{}
			err = p.beat(ctx, &up)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				p.log.Warn("liveness: cannot refresh this process's registration; retrying every second (others give back its work if this lasts)",
					"grace", Grace.String(), "err", err)
			}
			failing = true
			p.drop()
			up = time.Time{}
		case err == nil && failing:
			p.log.Info("liveness: registered again")
			failing = false
		}
	}
}

// beat connects and registers if needed, refreshes the row, and reaps dead
// processes once the connection has settled.
func (p *Process) beat(ctx context.Context, up *time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	p.mu.Lock()
	conn := p.conn
	p.mu.Unlock()
	if conn == nil {
		c, err := pgx.ConnectConfig(ctx, p.connCf)
		if err != nil {
			return err
		}
		var locked bool
		if err := c.QueryRow(ctx, registerSQL, p.cfg.Holder, p.cfg.Kind).Scan(&locked); err != nil {
			_ = c.Close(ctx)
			if errors.Is(err, pgx.ErrNoRows) {
				return errors.New("an earlier connection of this process still holds its lock")
			}
			return err
		}
		p.mu.Lock()
		p.conn = c
		p.mu.Unlock()
		*up = time.Now()
		return nil
	}
	tag, err := conn.Exec(ctx, heartbeatSQL, p.cfg.Holder)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		p.log.Warn("liveness: another process found this one dead and gave back its work; some of it may run twice",
			"kind", p.cfg.Kind)
		if err := conn.QueryRow(ctx, registerSQL, p.cfg.Holder, p.cfg.Kind).Scan(new(bool)); err != nil {
			return err
		}
	}
	if time.Since(*up) < Settle || p.cfg.Release == nil {
		return nil
	}
	return p.reap(ctx, conn)
}

// reap gives back the work of dead processes of this kind.
func (p *Process) reap(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, reapSQL, p.cfg.Kind, p.cfg.Holder, float64(Grace)/float64(time.Millisecond))
		if err != nil {
			return err
		}
		dead, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(dead) == 0 {
			return err
		}
		n, err := p.cfg.Release(ctx, tx, dead)
		if err != nil {
			return err
		}
		p.log.Info("liveness: gave back the work of dead processes", "kind", p.cfg.Kind, "dead", dead, "given_back", n)
		return nil
	})
}

// drop closes the connection after an error; the lock goes with it.
func (p *Process) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.conn.Close(ctx)
		cancel()
		p.conn = nil
	}
}
