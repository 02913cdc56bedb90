package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/relay"
)

// notifyWriters is how many goroutines write events in Notify.
const notifyWriters = 8

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

// Notify writes events (outbox.Write, one per transaction, notifyWriters
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
	if _, err := conn.Exec(ctx, "LISTEN jobsd_outbox"); err != nil {
		return NotifyResult{}, err
	}
	var notes atomic.Int64
	lctx, stopListen := context.WithCancel(ctx)
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		for {
			if _, err := conn.WaitForNotification(lctx); err != nil {
				return
			}
			notes.Add(1)
		}
	}()

	progressf(ctx, "notify: %d commits at %.0f/s for %v, relay running", total, rate, d)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, notifyWriters)
	for w := range notifyWriters {
		wg.Go(func() {
			for seq := w; seq < total; seq += notifyWriters {
				due := start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					return outbox.Write(ctx, tx, outbox.Event{Topic: topic, Key: fmt.Sprint("bench-", seq), Payload: payload(seq, SizeDefault)})
				})
				if err != nil {
					errs <- fmt.Errorf("notify: write event %d: %w", seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		stopListen()
		<-listened
		return NotifyResult{}, err
	}
	time.Sleep(100 * time.Millisecond) // notifications of the last commits
	stopListen()
	<-listened
	n := notes.Load()
	return NotifyResult{
		Commits: total, CommitRate: float64(total) / elapsed.Seconds(),
		Notifications: n, NotificationRate: float64(n) / elapsed.Seconds(),
		PerCommit: float64(n) / float64(total),
	}, nil
}
