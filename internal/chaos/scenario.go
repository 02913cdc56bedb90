package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/relay"
)

// Scenario is one row of the fault matrix.
type Scenario struct {
	Name   string
	Proves string // what a passing row shows, for the docs and -list
	// NeedsCluster marks scenarios that restart, stop or overload the
	// servers: they only run on the harness's own Postgres and RabbitMQ.
	NeedsCluster bool
	ServeArgs    []string // added to every serve's flags
	// Fault injects the faults while the load runs (started with it); it
	// returns when the last fault is over. ctx ends with the load: it times
	// the faults (r.at), while the operations on the servers use r.ctx, so
	// that a fault outlasting the load is completed, not cut in half.
	Fault func(ctx context.Context, r *run) error
	// Check returns why the row fails beyond lost and duplicate counts, or "".
	Check func(r *run, res *Result) string
}

// Scenarios lists the fault matrix in the order `make chaos` runs it.
func Scenarios() []Scenario {
	return []Scenario{
		{
			Name:   "crash_recovery",
			Proves: "kill -9 of a serve (workers + relay) and a consumer mid-load: running jobs are rescued, the relay's leased rows are taken over, nothing lost",
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.33) {
					return ctx.Err()
				}
				return r.fault(ctx, "kill -9 serve-a and consume-1", func() error {
					var wg sync.WaitGroup
					wg.Go(r.serves[0].Kill9)
					wg.Go(r.consumers[0].Kill9)
					wg.Wait()
					return nil
				})
			},
		},
		{
			Name:   "repeated_kills",
			Proves: "a kill -9 every 5 s, in turn of each serve and consumer, for most of the run",
			Fault: func(ctx context.Context, r *run) error {
				procs := []*Proc{r.serves[0], r.consumers[0], r.serves[1], r.consumers[1]}
				for i := 0; r.at(ctx, 0.2+float64(i)*5/r.duration.Seconds()) && r.elapsed() < 0.8; i++ {
					p := procs[i%len(procs)]
					if err := r.fault(ctx, "kill -9 "+p.Name, func() error { p.Kill9(); return nil }); err != nil {
						return err
					}
				}
				return ctx.Err()
			},
		},
		{
			Name:         "postgres_restart",
			Proves:       "Postgres restarted twice under load, -m fast then -m immediate (crash recovery): every process reconnects, nothing lost",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				for i, mode := range []string{"fast", "immediate"} {
					if !r.at(ctx, 0.25+0.3*float64(i)) {
						return ctx.Err()
					}
					if err := r.fault(ctx, "pg_ctl restart -m "+mode, func() error { return r.h.pg.Restart(r.ctx, mode) }); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			Name:         "backend_kill_storm",
			Proves:       "every backend of the database terminated (pg_terminate_backend) each second for 10 s: pools reconnect, transactions retried or refused, none half-applied",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				return r.fault(ctx, "terminate backends for 10s", func() error {
					ctx := r.ctx // the storm is not cut short by the load's end
					admin, err := r.h.pg.Connect(r.ctx, "postgres")
					if err != nil {
						return err
					}
					defer admin.Close(context.WithoutCancel(ctx))
					for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && ctx.Err() == nil; {
						var n int64
						if err := admin.QueryRow(ctx, backendsSQL, r.db, []int32{}).Scan(&n); err != nil {
							return err
						}
						r.note("terminated %d backends", n)
						sleep(ctx, time.Second)
					}
					return nil
				})
			},
		},
		{
			Name:         "pool_exhaustion",
			Proves:       "every Postgres connection slot taken for 10 s and the processes' connections terminated: they reconnect to \"too many clients\" refusals, wait and recover",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				return r.fault(ctx, "take every connection slot for 10s", func() error {
					ctx := r.ctx // the hold is not cut short by the load's end
					var held []*pgx.Conn
					defer func() {
						for _, c := range held {
							_ = c.Close(context.WithoutCancel(ctx))
						}
					}()
					full := false
					grab := func() error {
						c, err := r.h.pg.Connect(r.ctx, r.db)
						var pgErr *pgconn.PgError
						if errors.As(err, &pgErr) && (pgErr.Code == "53300" || pgErr.Code == "53400") {
							full = true
							return nil
						}
						if err == nil {
							held = append(held, c)
						}
						return err
					}
					for !full && len(held) < 500 {
						if err := grab(); err != nil {
							return err
						}
					}
					if len(held) == 0 {
						return errors.New("no connection slot taken")
					}
					// The processes' own connections go: they must reconnect
					// to a server that refuses them, while the harness keeps
					// every slot that frees.
					pids := make([]int32, len(held))
					for i, c := range held {
						pids[i] = int32(c.PgConn().PID())
					}
					var n int64
					if err := held[0].QueryRow(ctx, backendsSQL, r.db, pids).Scan(&n); err != nil {
						return err
					}
					for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && ctx.Err() == nil; {
						full = false
						if err := grab(); err != nil {
							return err
						}
						if full {
							sleep(ctx, 20*time.Millisecond)
						}
					}
					r.note("held %d connections, terminated %d of the processes'", len(held), n)
					return nil
				})
			},
		},
		{
			Name:   "idle_in_tx_pin",
			Proves: "a transaction that wrote an event stays idle for 15 s (pins xmin, holds its key's lock): other keys flow, the late commit is still published, in order",
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.25) {
					return ctx.Err()
				}
				return r.fault(ctx, "hold a writing transaction idle 15s", func() error {
					tx, err := r.pool.Begin(r.ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(context.WithoutCancel(r.ctx)) //nolint:errcheck
					if err := outbox.Write(r.ctx, tx, outbox.Event{Topic: OrderTopic, Key: "pinned",
						Payload: orderPayload{"pinned", 1}}); err != nil {
						return err
					}
					sleep(r.ctx, 15*time.Second)
					if err := tx.Commit(r.ctx); err != nil {
						return err
					}
					r.load.mu.Lock()
					r.load.ordered++
					r.load.mu.Unlock()
					return nil
				})
			},
		},
		{
			Name:         "broker_restart",
			Proves:       "the whole RabbitMQ cluster stopped and started again: relays and consumers reconnect, outbox rows wait, quorum queues keep what was confirmed",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				return r.fault(ctx, "stop and start every node", func() error {
					var wg sync.WaitGroup
					errs := make([]error, len(r.h.rabbit.Nodes))
					for i, n := range r.h.rabbit.Nodes {
						wg.Go(func() { errs[i] = n.Stop(r.ctx) })
					}
					wg.Wait()
					if err := errors.Join(errs...); err != nil {
						return err
					}
					return r.h.startStoppedNodes(r.ctx)
				})
			},
		},
		{
			Name:         "rabbit_node_kill",
			Proves:       "kill -9 of the node serve-a's relay and consume-1 are connected to: they fail over to another node, nothing confirmed is lost",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				node := r.h.rabbit.Nodes[0]
				n, err := r.h.rabbit.ConnectionsOnPort(r.ctx, node, node.Port)
				if err != nil {
					return err
				}
				if n < 2 {
					return fmt.Errorf("rabbit_node_kill: %d connections on %s, want serve-a's and consume-1's", n, node.Name)
				}
				r.note("%d connections on %s", n, node.Name)
				if err := r.fault(ctx, "kill -9 "+node.Name, node.Kill); err != nil {
					return err
				}
				// Back after the others failed over, as a restarted machine.
				_ = waitFor(r.ctx, time.Minute, func() (bool, error) { return r.allHealthy(r.ctx), nil })
				return node.Start(r.ctx)
			},
		},
		{
			Name:         "rabbit_node_stop",
			Proves:       "the node serve-b's relay and consume-2 use stops its broker app for 10 s (rabbitmqctl stop_app), then starts again: failover and back, nothing lost",
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				node := r.h.rabbit.Nodes[1]
				return r.fault(ctx, "stop_app on "+node.Name+" for 10s", func() error {
					if _, err := node.Ctl(r.ctx, "stop_app"); err != nil {
						return err
					}
					sleep(r.ctx, 10*time.Second)
					_, err := node.Ctl(r.ctx, "start_app")
					return err
				})
			},
		},
		{
			Name: "memory_alarm",
			Proves: fmt.Sprintf("a memory alarm blocks every publisher for 10 s (connection.blocked): relays pause, then resume; "+
				"at most one confirm window (%d) of republished duplicates per relay", relay.WindowDefault),
			NeedsCluster: true,
			Fault: func(ctx context.Context, r *run) error {
				if !r.at(ctx, 0.3) {
					return ctx.Err()
				}
				node := r.h.rabbit.Nodes[0]
				return r.fault(ctx, "memory alarm for 10s", func() error {
					if err := node.SetMemoryWatermark(r.ctx, "0.0000001"); err != nil {
						return err
					}
					err := waitFor(r.ctx, 30*time.Second, func() (bool, error) { return r.relaysBlocked(r.ctx), nil })
					if err == nil {
						sleep(r.ctx, 10*time.Second)
					} else {
						err = fmt.Errorf("relays never reported the broker blocked: %w", err)
					}
					return errors.Join(err, node.SetMemoryWatermark(r.ctx, "0.4"))
				})
			},
			Check: func(r *run, res *Result) string {
				if limit := int64(len(r.serves) * relay.WindowDefault); res.Witness.Messages-res.Witness.Distinct > limit {
					return fmt.Sprintf("%d duplicates published, more than one window per relay (%d)",
						res.Witness.Messages-res.Witness.Distinct, limit)
				}
				return ""
			},
		},
		{
			Name: "overload",
			Proves: "four times the signups the workers can do (4 workers, 100 ms per profile, per serve): POST /signup answers 503 + Retry-After " +
				"above --max-backlog 200, acknowledged signups all complete",
			ServeArgs: []string{"--max-backlog", "200", "--work-delay", "100ms", "--workers", "4"},
			Fault: func(ctx context.Context, r *run) error {
				// Four times the rate, from the start: about 3 × 4 × rate jobs a
				// second for 2 × 40 the workers can do.
				r.load.setRate(4 * r.h.cfg.Rate)
				r.note("load raised to %d signups/s", 4*r.h.cfg.Rate)
				return nil
			},
			Check: func(r *run, res *Result) string {
				switch {
				case res.Refused == 0:
					return "no signup refused: the backlog limit was not reached"
				case r.load.noRetryAfter.Load() > 0:
					return fmt.Sprintf("%d refusals without Retry-After", r.load.noRetryAfter.Load())
				}
				return ""
			},
		},
		{
			Name:   "consumer_kills",
			Proves: "kill -9 of a consumer every 3 s, alternating: unacked deliveries come back, the inbox makes them no-ops",
			Fault: func(ctx context.Context, r *run) error {
				for i := 0; r.at(ctx, 0.2+float64(i)*3/r.duration.Seconds()) && r.elapsed() < 0.7; i++ {
					p := r.consumers[i%len(r.consumers)]
					if err := r.fault(ctx, "kill -9 "+p.Name, func() error { p.Kill9(); return nil }); err != nil {
						return err
					}
				}
				return ctx.Err()
			},
		},
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
