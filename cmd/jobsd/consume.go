package main

import (
	"context"
	"log/slog"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/internal/logging"
)

const progressIntervalDefault = 5 * time.Second

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "consume",
		Usage: "run an analytics consumer on queue Q until SIGINT/SIGTERM",
		UsageText: "jobsd consume --queue Q [--exchange X] [--prefetch N] [--batch-size N] [--concurrency N]\n" +
			"   [--max-attempts N] [--delivery-limit N] [--inbox-retention D] [--http-addr ADDR]\n" +
			"   [--exchange-type topic|fanout] [--binding-key K ...]",
		Description: "Declares the durable exchange, a durable quorum queue Q bound to it and the\n" +
			"dead-letter exchange Q.dlx with queue Q.dead. Each batch of messages is recorded in\n" +
			"consumer_inbox and counted in analytics_counts in one transaction, then acked: a\n" +
			"redelivered message has no effect. Malformed messages go to Q.dead. Consumers on the\n" +
			"same queue share the work; consumers on different queues each get every event.\n\n" +
			"It exits 1 at once when the database or the broker is unreachable at start; once\n" +
			"running it reconnects to a lost broker with backoff, and while the database is down\n" +
			"it holds its messages unacked and retries (it never cycles them through the queue,\n" +
			"whose delivery limit would dead-letter them). A message whose effect keeps failing\n" +
			"goes to Q.dead after --max-attempts. Inbox rows older than --inbox-retention are\n" +
			"deleted in the background. SIGINT/SIGTERM finishes the messages in hand and exits 0.\n\n" +
			"With --http-addr it serves GET /metrics (jobsd_consumer_*), /healthz and /readyz (503 while\n" +
			"the broker connection is down or the last database transaction failed).\n\n" +
			"Examples:\n   jobsd consume --queue analytics.counts\n   JOBSD_QUEUE=analytics.counts jobsd consume --prefetch 500",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "queue", EnvVars: []string{"JOBSD_QUEUE"},
				Usage: "the consumer group's queue (required)"},
			&cli.StringFlag{Name: "exchange", EnvVars: []string{"JOBSD_EXCHANGE"}, Value: consumer.ExchangeDefault,
				Usage: "the relay's exchange"},
			&cli.StringFlag{Name: "exchange-type", EnvVars: []string{"JOBSD_EXCHANGE_TYPE"}, Value: consumer.ExchangeTypeDefault,
				Usage: "topic or fanout, as the relay's --exchange-type; an existing exchange of another type is used as it is"},
			&cli.StringSliceFlag{Name: "binding-key", EnvVars: []string{"JOBSD_BINDING_KEYS"}, Value: cli.NewStringSlice(consumer.BindingKeyAll),
				Usage: "bind Q to the exchange with this key, repeatable: 'user.*' (one word), 'order.#' (any), '#' (all); " +
					"a fanout exchange ignores it; bindings are only added, never removed"},
			&cli.IntFlag{Name: "prefetch", EnvVars: []string{"JOBSD_PREFETCH"}, Value: consumer.PrefetchDefault,
				Usage: "unacked messages the broker may send to each channel"},
			&cli.IntFlag{Name: "batch-size", EnvVars: []string{"JOBSD_BATCH_SIZE"}, DefaultText: "min(100, prefetch)",
				Usage: "most messages per database transaction"},
			&cli.IntFlag{Name: "concurrency", EnvVars: []string{"JOBSD_CONCURRENCY"}, Value: consumer.ConcurrencyDefault,
				Usage: "channels, each with its own consumer and worker"},
			&cli.DurationFlag{Name: "retry-backoff", EnvVars: []string{"JOBSD_RETRY_BACKOFF"}, Value: consumer.RetryBackoffDefault,
				Usage: "first wait before retrying a failed batch or redialling the broker (doubles, capped at 30s)"},
			&cli.IntFlag{Name: "max-attempts", EnvVars: []string{"JOBSD_MAX_ATTEMPTS"}, Value: consumer.MaxAttemptsDefault,
				Usage: "tries of a message whose handler fails (not a database error) before it goes to Q.dead"},
			&cli.IntFlag{Name: "delivery-limit", EnvVars: []string{"JOBSD_DELIVERY_LIMIT"}, Value: consumer.DeliveryLimitDefault,
				Usage: "the queue's x-delivery-limit (RabbitMQ 4's default; 3.x has none); -1 declares none"},
			&cli.DurationFlag{Name: "inbox-retention", EnvVars: []string{"JOBSD_INBOX_RETENTION"}, Value: consumer.InboxRetentionDefault,
				Usage: "delete consumer_inbox rows of Q older than this; must exceed any redelivery delay; negative keeps them"},
			&cli.DurationFlag{Name: "progress-interval", EnvVars: []string{"JOBSD_PROGRESS_INTERVAL"}, Value: progressIntervalDefault,
				Usage: "how often to log progress when something changed; 0 disables"},
			consumeHTTPFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.String("queue") == "" {
				return usagef("missing --queue (see 'jobsd consume --help')")
			}
			switch {
			case c.Int("prefetch") < 1:
				return usagef("--prefetch must be at least 1")
			case c.Int("batch-size") < 0, c.IsSet("batch-size") && c.Int("batch-size") == 0:
				return usagef("--batch-size must be at least 1")
			case c.Int("concurrency") < 1:
				return usagef("--concurrency must be at least 1")
			case c.Duration("retry-backoff") <= 0:
				return usagef("--retry-backoff must be positive")
			case c.Int("max-attempts") < 1:
				return usagef("--max-attempts must be at least 1")
			case c.Int("delivery-limit") < 1 && c.Int("delivery-limit") != -1:
				return usagef("--delivery-limit must be at least 1, or -1 for none")
			case c.String("exchange-type") != consumer.ExchangeTopic && c.String("exchange-type") != consumer.ExchangeFanout:
				return usagef("--exchange-type must be topic or fanout, got %q", c.String("exchange-type"))
			case c.Duration("progress-interval") < 0:
				return usagef("--progress-interval must not be negative")
			}
			obs, err := newConsumeHTTP(c.String("http-addr"))
			if err != nil {
				return usagef("%v", err)
			}
			cfg := consumer.Config{
				Queue:          c.String("queue"),
				Exchange:       c.String("exchange"),
				ExchangeType:   c.String("exchange-type"),
				BindingKeys:    c.StringSlice("binding-key"),
				Prefetch:       c.Int("prefetch"),
				BatchSize:      c.Int("batch-size"),
				Concurrency:    c.Int("concurrency"),
				RetryBackoff:   c.Duration("retry-backoff"),
				MaxAttempts:    c.Int("max-attempts"),
				DeliveryLimit:  c.Int("delivery-limit"),
				InboxRetention: c.Duration("inbox-retention"),
				Logger:         slog.Default(),
				Registerer:     obs.registerer(),
			}
			tp, stopTracing, err := setupTracing(c, "jobsd-consume")
			if err != nil {
				return err
			}
			defer stopTracing()
			cfg.TracerProvider = tp
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			// Refused credentials or vhost get a clear line; the consumer
			// reports a broker that is down itself.
			if _, err := dialBroker(c.String("amqp-url")); err != nil {
				return err
			}
			cons, err := consumer.New(pool, c.String("amqp-url"), cfg)
			if err != nil {
				return usagef("%v", err)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := obs.start(ctx, cons); err != nil {
				return err
			}
			defer obs.stop()
			var wg sync.WaitGroup
			progressCtx, stopProgress := context.WithCancel(ctx)
			wg.Go(func() { logProgress(progressCtx, cons, cfg.Queue, c.Duration("progress-interval")) })
			err = cons.Run(ctx)
			stopProgress()
			wg.Wait()
			if err != nil {
				return err
			}
			s := cons.Stats()
			consumeLog().Info("consumer totals", "queue", cfg.Queue, "processed", s.Processed, "duplicates", s.Duplicates,
				"rejected", s.Rejected, "requeued", s.Requeued)
			return nil
		},
	}
}

// consumeLog is the logger of consume's own lines: the consumer's component.
func consumeLog() *slog.Logger { return slog.Default().With(logging.KeyComponent, "consumer") }

// logProgress logs the consumer's counts every interval when they changed, so
// that someone watching several consumers sees them share the work.
func logProgress(ctx context.Context, cons *consumer.Consumer, queue string, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last consumer.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := cons.Stats()
		if s == last {
			continue
		}
		rate := float64(s.Processed+s.Duplicates-last.Processed-last.Duplicates) / interval.Seconds()
		consumeLog().Info("consumer progress", "queue", queue, "processed", s.Processed, "duplicates", s.Duplicates,
			"rejected", s.Rejected, "requeued", s.Requeued, "per_second", int64(rate))
		last = s
	}
}
