package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/relay"
	jsql "github.com/jobsd/jobsd/sql"
)

var (
	listenSQL    = jsql.Statement("relay_listen")
	notifyEndSQL = jsql.Statement("bench_notify_end")
)

// NotifyResult counts the NOTIFYs writers sent while a relay drained their
// events. Before migration 006 every writing transaction sent one.
type NotifyResult struct {
	Commits          int     `json:"commits"`
	CommitRate       float64 `json:"commits_per_sec"`
	Notifications    int64   `json:"notifications"`
	NotificationRate float64 `json:"notifications_per_sec"`
	// PerCommit is notifications over commits: 1 means one per commit.
	PerCommit float64 `json:"notifications_per_commit"`
}

// Notify writes events (outbox.Write, one per transaction, from pacedWriters
// goroutines) at rate commits per second for d while a relay (default
// configuration) publishes them to a queue nobody consumes, and counts the
// notifications on the relay's channel with a connection of its own.
func Notify(ctx context.Context, pool *pgxpool.Pool, amqpURL string, rate float64, d time.Duration) (NotifyResult, error) {
	total := int(rate * d.Seconds())
	if total < 1 {
		return NotifyResult{}, fmt.Errorf("bench: rate %v over %v sends no event", rate, d)
	}
	top, err := declare(amqpURL, false)
	if err != nil {
		return NotifyResult{}, err
	}
	defer top.delete()
	r, err := relay.New(pool, amqpURL, relay.Config{Exchange: top.name, Retention: relay.RetentionKeep, Logger: logger(ctx)})
	if err != nil {
		return NotifyResult{}, err
	}
	run := goRun(ctx, r.Run)
	defer func() { _ = run.stop() }()
	if err := waitFor(ctx, time.Millisecond, func() (bool, error) { return r.BrokerConnected(), nil },
		func() string { return "notify: the relay did not connect to the broker" }); err != nil {
		return NotifyResult{}, err
	}

	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		return NotifyResult{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, listenSQL); err != nil {
		return NotifyResult{}, err
	}
	// The listener counts until the end marker, which this process sends
	// after the last commit: notifications arrive in commit order.
	const endMarker = "jobsd-bench-end"
	var notes atomic.Int64
	listened := make(chan error, 1)
	go func() {
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				listened <- err
				return
			}
			if n.Payload == endMarker {
				listened <- nil
				return
			}
			notes.Add(1)
		}
	}()

	progressf(ctx, "notify: %d commits at %.0f/s for %v, relay running", total, rate, d)
	elapsed, err := sendPaced(ctx, "notify", total, rate, func(seq int) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return outbox.Write(ctx, tx, outbox.Event{Topic: topic, Key: fmt.Sprint("bench-", seq), Payload: payload(seq, SizeDefault)})
		})
	})
	if err == nil {
		_, err = pool.Exec(ctx, notifyEndSQL, endMarker)
	}
	if err != nil {
		_ = conn.PgConn().Close(context.WithoutCancel(ctx)) // ends the listener's wait
		<-listened
		return NotifyResult{}, err
	}
	if err := <-listened; err != nil {
		return NotifyResult{}, fmt.Errorf("notify: listen: %w", err)
	}
	n := notes.Load()
	return NotifyResult{
		Commits: total, CommitRate: float64(total) / elapsed.Seconds(),
		Notifications: n, NotificationRate: float64(n) / elapsed.Seconds(),
		PerCommit: float64(n) / float64(total),
	}, nil
}
