package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/internal/demo"
	"github.com/jobsd/jobsd/internal/migrate"
	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/relay"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "the first run: migrate, then serve + consume + a stream of signups, with live progress",
		Description: "Creates the database if needed, migrates, and runs in one process the workers, the relay,\n" +
			"the HTTP endpoints with River UI, an analytics consumer and a publisher that signs a user\n" +
			"up every --rate. Ctrl-C (or --duration) stops the signups, drains and prints a summary.\n" +
			"The events go to the demo's own exchange (--exchange) and queue (--queue), which it empties at start.\n\n" +
			"Examples:\n   jobsd demo\n   jobsd demo --rate 100ms --duration 30s --fail-rate 0.5",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "rate", EnvVars: []string{"JOBSD_DEMO_RATE"}, Value: demo.RateDefault,
				Usage: "time between two signups"},
			&cli.DurationFlag{Name: "duration", EnvVars: []string{"JOBSD_DEMO_DURATION"}, DefaultText: "run until Ctrl-C",
				Usage: "stop after this long"},
			&cli.Float64Flag{Name: "fail-rate", EnvVars: []string{"JOBSD_FAIL_RATE"}, Value: demo.FailRateDefault,
				Usage: "probability (0-1) that a profile call fails, so that retries are visible"},
			&cli.StringFlag{Name: "fail-service", EnvVars: []string{"JOBSD_FAIL_SERVICE"},
				Usage: "a service whose profile calls always fail"},
			&cli.StringFlag{Name: "queue", EnvVars: []string{"JOBSD_DEMO_QUEUE"}, Value: demo.QueueDefault,
				Usage: "the analytics consumer's queue; the demo empties it at start, so never name a queue in use"},
			&cli.StringFlag{Name: "exchange", EnvVars: []string{"JOBSD_DEMO_EXCHANGE"}, Value: demo.ExchangeDefault,
				Usage: "exchange the relay publishes to and the consumer's queue is bound to (the demo's own: other publishers' events never reach its queue)"},
			&cli.StringFlag{Name: "http-addr", EnvVars: []string{"JOBSD_HTTP_ADDR"}, Value: server.HTTPAddrDefault,
				Usage: "HTTP listen address (River UI, /metrics); - disables HTTP"},
			&cli.DurationFlag{Name: "drain-timeout", Value: demo.DrainTimeoutDefault,
				Usage: "after the stop, how long to wait for open jobs and events"},
		},
		Action: func(c *cli.Context) error {
			if c.Duration("rate") <= 0 {
				return usagef("--rate must be positive, got %s", c.Duration("rate"))
			}
			faults := jobs.Faults{FailRate: c.Float64("fail-rate"), FailService: c.String("fail-service")}
			if err := faults.Validate(); err != nil {
				return usagef("%v", err)
			}
			log := slog.Default()
			if !c.IsSet("log-level") {
				// River logs every retry at info; keep the progress readable.
				log, _ = newLogger(c.String("log-format"), "warn", "demo", c.App.ErrWriter)
			}
			// Tracing, when the OTEL_* variables turn it on, is installed as
			// OpenTelemetry's global provider, which the demo's server and
			// consumer use.
			_, stopTracing, err := setupTracing(c, "jobsd-demo")
			if err != nil {
				return err
			}
			defer stopTracing()
			// Refused RabbitMQ credentials or vhost: say so before touching
			// the database (the demo's consumer reports a broker that is down).
			if _, err := dialBroker(c.String("amqp-url")); err != nil {
				return err
			}
			url := c.String("database-url")
			if _, err := database.EnsureExists(c.Context, url); err != nil {
				return err
			}
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			if _, err := migrate.Up(c.Context, pool); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			ctx, stop := stopContext(c.Context, log) // a second Ctrl-C exits at once
			defer stop()
			_, err = demo.Run(ctx, pool, c.String("amqp-url"), c.App.Writer, demo.Config{
				Rate:         c.Duration("rate"),
				Duration:     c.Duration("duration"),
				Queue:        c.String("queue"),
				DrainTimeout: c.Duration("drain-timeout"),
				Interactive:  isTerminal(c.App.Writer),
				Server: server.Config{
					HTTPAddr:        c.String("http-addr"),
					ShutdownTimeout: 5 * time.Second,
					ReadinessGrace:  -1, // no load balancer to tell
					Jobs:            jobs.Config{Faults: faults},
				},
				Relay:  relay.Config{Exchange: c.String("exchange")},
				Logger: log,
			})
			return err
		},
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
