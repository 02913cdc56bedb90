// Package demo is the first-run experience behind `jobsd demo`: in one process
// it runs the server (workers, relay, HTTP with River UI), an analytics
// consumer and a publisher that signs a user up at a steady rate, prints live
// progress, and after a stop drains and prints a summary with latencies.
//
// It may import every jobsd package except the CLI.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/relay"
	"github.com/jobsd/jobsd/signup"
)

// Defaults of Config.
const (
	RateDefault         = 500 * time.Millisecond
	FailRateDefault     = 0.2
	QueueDefault        = "analytics.demo"
	ExchangeDefault     = "analytics.demo"
	DrainTimeoutDefault = 20 * time.Second
)

// Config configures a demo run. Zero fields take the documented defaults.
type Config struct {
	// Rate is the time between two signups. Default RateDefault.
	Rate time.Duration
	// Duration stops the run by itself after this long. Zero: run until ctx is done.
	Duration time.Duration
	// Queue is the analytics consumer's queue. Default QueueDefault. The
	// demo empties it at start (see Run): never point it at a queue in use.
	Queue string
	// DrainTimeout bounds the wait, after the stop, for open jobs and events.
	// Default DrainTimeoutDefault.
	DrainTimeout time.Duration
	// Interactive refreshes one status line in place (for a terminal) instead
	// of printing a line every ProgressEvery.
	Interactive bool
	// ProgressEvery is how often progress is printed. Default 1s when
	// Interactive, 5s otherwise.
	ProgressEvery time.Duration
	// Server configures the workers and HTTP. The demo's default RetryPolicy
	// retries after 1s, 2s, 4s, then every 5s. The CLI passes --fail-rate
	// (default FailRateDefault).
	Server server.Config
	// Relay configures the outbox relay that the server runs. Its Exchange,
	// which the consumer's queue is bound to, defaults to ExchangeDefault
	// (the demo's own, not the shared relay.ExchangeDefault); an existing one
	// of another type than ExchangeType (fanout, from an older jobsd) is used
	// as it is, since the demo's queue takes every topic. Its Retention
	// must keep published rows for the summary's latency figures.
	Relay relay.Config
	// Logger receives the components' logs. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Rate == 0 {
		c.Rate = RateDefault
	}
	if c.Queue == "" {
		c.Queue = QueueDefault
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DrainTimeoutDefault
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
		if c.Interactive {
			c.ProgressEvery = time.Second
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Server.Logger = c.Logger
	if c.Server.RetryPolicy == nil {
		c.Server.RetryPolicy = fastRetry{}
	}
	c.Relay.Logger = c.Logger
	if c.Relay.Exchange == "" {
		c.Relay.Exchange = ExchangeDefault
	}
	if c.Relay.Retention == 0 {
		c.Relay.Retention = relay.RetentionDefault
	}
	return c
}

// Summary is what a run did.
type Summary struct {
	Elapsed  time.Duration `json:"elapsed"`
	Progress Progress      `json:"progress"`
	Latency  Latency       `json:"latency"`
	Drained  bool          `json:"drained"` // every job and event reached a final state
}

// Run runs the demo until ctx is done or cfg.Duration passed, then drains and
// returns the summary. Progress goes to out.
//
// Before it starts, Run empties cfg.Queue (it says so on out, with the number
// of messages purged) and unbinds it from the shared relay.ExchangeDefault
// exchange, to which earlier versions bound it: so a run never starts behind
// a backlog of other publishers' or earlier runs' events.
func Run(ctx context.Context, pool *pgxpool.Pool, amqpURL string, out io.Writer, cfg Config) (*Summary, error) {
	cfg = cfg.withDefaults()
	if cfg.Rate < 0 {
		return nil, errors.New("rate must be positive")
	}
	srvCfg := cfg.Server
	srvCfg.AMQPURL, srvCfg.Relay, srvCfg.NoRelay = amqpURL, cfg.Relay, false
	srv, err := server.New(pool, srvCfg)
	if err != nil {
		return nil, err
	}
	cons, err := consumer.New(pool, amqpURL, consumer.Config{
		Queue: cfg.Queue, Exchange: cfg.Relay.Exchange, ExchangeType: cfg.Relay.ExchangeType,
		Logger: cfg.Logger, Registerer: srv.Registry(),
	})
	if err != nil {
		return nil, err
	}
	var since time.Time
	if err := pool.QueryRow(ctx, startSQL).Scan(&since); err != nil {
		return nil, err
	}
	purged, err := resetQueue(amqpURL, cfg.Queue, cfg.Relay.Exchange)
	if err != nil {
		return nil, err
	}

	// Components run on their own context, cancelled after the drain.
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComponents()
	errs := make(chan error, 2)
	run := func(name string, f func(context.Context) error) {
		go func() {
			if err := f(compCtx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	run("server", srv.Run)
	run("consumer", cons.Run)
	// The consumer's queue must be bound before the first event is published:
	// the exchange drops what reaches it while no queue is bound.
	select {
	case <-cons.Ready():
	case err := <-errs:
		stopComponents()
		<-errs
		if err == nil {
			err = errors.New("the consumer stopped before it was ready")
		}
		return nil, err
	case <-ctx.Done():
		stopComponents()
		<-errs
		<-errs
		return nil, ctx.Err()
	}

	pubCtx, stopPublishing := context.WithCancel(ctx)
	if cfg.Duration > 0 {
		pubCtx, stopPublishing = context.WithTimeout(ctx, cfg.Duration)
	}
	defer stopPublishing()
	start := time.Now()
	p := &printer{out: out, interactive: cfg.Interactive}
	p.header(cfg, purged)
	publishErr := make(chan error, 1)
	go func() {
		publishErr <- publish(pubCtx, &signup.Service{Pool: pool, River: srv.River()}, cfg.Rate, start, cfg.Logger)
	}()

	// stopAll stops the publisher (unless it returned already) and the
	// components, and waits for all of them.
	running, publishing := 2, true
	stopAll := func() {
		stopPublishing()
		if publishing {
			<-publishErr
		}
		stopComponents()
		for ; running > 0; running-- {
			if err := <-errs; err != nil {
				cfg.Logger.Warn("component stopped with an error", "err", err)
			}
		}
	}

	tick := time.NewTicker(cfg.ProgressEvery)
	defer tick.Stop()
loop:
	for {
		select {
		case err := <-publishErr: // returns when pubCtx is done
			publishing = false
			if err != nil {
				stopAll()
				return nil, err
			}
			break loop
		case err := <-errs:
			running--
			if err == nil {
				err = errors.New("a component stopped before the demo did")
			}
			stopAll()
			return nil, err
		case <-tick.C:
			if pr, err := readProgress(ctx, pool, since, cfg.Queue); err == nil {
				p.progress(pr)
			}
		}
	}

	// Drain: no new signups; wait for open jobs and events to settle.
	p.note(fmt.Sprintf("stopping: draining open jobs and events (up to %s)...", cfg.DrainTimeout))
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancelDrain()
	final, drained := drain(drainCtx, pool, since, cfg.Queue, p, cfg.ProgressEvery)
	stopAll()
	lat, err := readLatency(context.WithoutCancel(ctx), pool, since, cfg.Queue)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Elapsed: time.Since(start), Progress: final, Latency: lat, Drained: drained}
	p.summary(sum)
	return sum, nil
}

func drain(ctx context.Context, pool *pgxpool.Pool, since time.Time, queue string, p *printer, every time.Duration) (Progress, bool) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last Progress
	printed := time.Now()
	for {
		pr, err := readProgress(context.WithoutCancel(ctx), pool, since, queue)
		if err == nil {
			last = pr
			if pr.settled() {
				return pr, true
			}
		}
		select {
		case <-ctx.Done():
			return last, false
		case <-tick.C:
			if time.Since(printed) >= every {
				p.progress(last)
				printed = time.Now()
			}
		}
	}
}
