package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/metrics"
	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/relay"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run River workers, the outbox relay and the HTTP endpoints until SIGINT/SIGTERM",
		Description: "HTTP: POST /signup, GET /healthz, GET /readyz, GET /metrics (Prometheus) and River UI\n" +
			"under /riverui/. /readyz is 503 only when the database is unreachable (the broker's state is\n" +
			"in its body and in metrics: the outbox absorbs a broker outage). On SIGINT/SIGTERM it stops\n" +
			"taking work, gives running jobs most of --shutdown-timeout to finish, and exits 0; a\n" +
			"component still running at the timeout is named and serve exits 1. A second Ctrl-C exits at once.\n\n" +
			"River UI can cancel, retry and delete jobs: with --ui-user and --ui-password, /riverui/ and\n" +
			"/metrics need HTTP basic auth (/signup, /healthz, /readyz stay open). serve refuses to listen\n" +
			"on a non-loopback --http-addr without them. Prefer the environment for the password.\n\n" +
			"The relay publishes committed outbox events to the --exchange exchange (--exchange-type topic\n" +
			"or fanout) at --amqp-url, with each event's topic as routing key and publisher confirms; several serve processes share the outbox safely (leases, per-key order).\n\n" +
			"Examples:\n   jobsd serve\n   jobsd serve --fail-rate 0.3 --fail-service food --http-addr 127.0.0.1:8081\n" +
			"   JOBSD_UI_USER=ops JOBSD_UI_PASSWORD=... jobsd serve --http-addr 0.0.0.0:8080",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", EnvVars: []string{"JOBSD_HTTP_ADDR"}, Value: server.HTTPAddrDefault,
				Usage: "HTTP listen address; - disables HTTP"},
			&cli.IntFlag{Name: "workers", EnvVars: []string{"JOBSD_WORKERS"}, Value: server.WorkersDefault,
				Usage: "jobs worked at once by this process"},
			maxAttemptsFlag(),
			&cli.DurationFlag{Name: "job-timeout", EnvVars: []string{"JOBSD_JOB_TIMEOUT"},
				DefaultText: "River's 1m, or --rescue-after if shorter", Usage: "time limit of one job attempt"},
			&cli.DurationFlag{Name: "rescue-after", EnvVars: []string{"JOBSD_RESCUE_AFTER"}, DefaultText: "River's 1h",
				Usage: "a job running this long is presumed orphaned by a dead worker and retried"},
			&cli.DurationFlag{Name: "shutdown-timeout", EnvVars: []string{"JOBSD_SHUTDOWN_TIMEOUT"}, Value: server.ShutdownTimeoutDefault,
				Usage: "on SIGINT/SIGTERM, the bound of the whole stop: running jobs get all but a fifth of it (at most 5s) to finish, " +
					"then are cancelled (retried later); what has not stopped at the timeout is abandoned and serve exits 1"},
			&cli.DurationFlag{Name: "http-read-timeout", EnvVars: []string{"JOBSD_HTTP_READ_TIMEOUT"}, Value: server.ReadTimeoutDefault,
				Usage: "time to read a whole request, body included (headers: 10s); a negative value disables it"},
			&cli.DurationFlag{Name: "http-write-timeout", EnvVars: []string{"JOBSD_HTTP_WRITE_TIMEOUT"}, Value: server.WriteTimeoutDefault,
				Usage: "time to answer a request once its headers are read (River UI's slowest pages); a negative value disables it"},
			&cli.DurationFlag{Name: "http-idle-timeout", EnvVars: []string{"JOBSD_HTTP_IDLE_TIMEOUT"}, Value: server.IdleTimeoutDefault,
				Usage: "how long a keep-alive connection may wait for its next request; a negative value disables it"},
			&cli.BoolFlag{Name: "poll-only", EnvVars: []string{"JOBSD_POLL_ONLY"},
				Usage: "poll instead of LISTEN/NOTIFY (for PgBouncer in transaction mode)"},
			&cli.BoolFlag{Name: "no-relay", EnvVars: []string{"JOBSD_NO_RELAY"},
				Usage: "do not run the outbox relay in this process"},
			&cli.StringFlag{Name: "exchange", EnvVars: []string{"JOBSD_EXCHANGE"}, Value: relay.ExchangeDefault,
				Usage: "durable exchange the relay publishes to, with each event's topic as routing key (declared at start)"},
			&cli.StringFlag{Name: "exchange-type", EnvVars: []string{"JOBSD_EXCHANGE_TYPE"}, Value: relay.ExchangeTypeDefault,
				Usage: "topic (queues get the topics their binding keys match) or fanout (every queue gets every event); " +
					"an existing exchange of another type is used as it is, with a warning"},
			&cli.DurationFlag{Name: "relay-poll", EnvVars: []string{"JOBSD_RELAY_POLL"}, Value: relay.PollIntervalDefault,
				Usage: "relay poll interval when no notification wakes it (rows inserted while LISTEN was down, retries)"},
			&cli.DurationFlag{Name: "relay-lease", EnvVars: []string{"JOBSD_RELAY_LEASE"}, Value: relay.LeaseDefault,
				Usage: "how long a relay holds the rows it claimed; a crashed relay's rows go to another after this"},
			&cli.IntFlag{Name: "relay-batch", EnvVars: []string{"JOBSD_RELAY_BATCH"}, Value: relay.BatchSizeDefault,
				Usage: "rows the relay claims at once"},
			&cli.IntFlag{Name: "relay-window", EnvVars: []string{"JOBSD_RELAY_WINDOW"}, Value: relay.WindowDefault,
				Usage: "messages awaiting their publisher confirm at once"},
			&cli.IntFlag{Name: "relay-max-attempts", EnvVars: []string{"JOBSD_RELAY_MAX_ATTEMPTS"}, Value: relay.MaxAttemptsDefault,
				Usage: "publishes the broker may refuse before an event becomes dead"},
			&cli.BoolFlag{Name: "relay-mandatory", EnvVars: []string{"JOBSD_RELAY_MANDATORY"},
				Usage: "publish with the mandatory flag: an event no queue is bound to is retried, then dead, instead of dropped"},
			&cli.BoolFlag{Name: "relay-strict-order", EnvVars: []string{"JOBSD_RELAY_STRICT_ORDER"},
				Usage: "publish a key's next event only once the broker confirmed the previous one: per-key order holds even through broker nacks (a node failure), at the cost of hot-key throughput"},
			&cli.StringFlag{Name: "relay-envelope", EnvVars: []string{"JOBSD_RELAY_ENVELOPE"}, Value: relay.EnvelopeNone,
				Usage: "none, or cloudevents: add CloudEvents 1.0 attributes as cloudEvents_* headers (binary content mode)"},
			&cli.StringFlag{Name: "relay-source", EnvVars: []string{"JOBSD_RELAY_SOURCE"}, Value: relay.SourceDefault,
				Usage: "the CloudEvents source (a URI-reference, e.g. https://example.com/signup) with --relay-envelope cloudevents"},
			&cli.StringFlag{Name: "app-id", EnvVars: []string{"JOBSD_APP_ID"}, Value: relay.AppIDDefault,
				Usage: "the AMQP app_id property of the messages the relay publishes"},
			&cli.DurationFlag{Name: "outbox-retention", EnvVars: []string{"JOBSD_OUTBOX_RETENTION"}, Value: relay.RetentionDefault,
				Usage: "delete published events after this; 0 deletes at once, a negative value keeps them"},
			&cli.Float64Flag{Name: "fail-rate", EnvVars: []string{"JOBSD_FAIL_RATE"},
				Usage: "fault injection: probability (0-1) that a profile call fails"},
			&cli.StringFlag{Name: "fail-service", EnvVars: []string{"JOBSD_FAIL_SERVICE"},
				Usage: "fault injection: a service whose profile calls always fail"},
			&cli.IntFlag{Name: "fail-attempts", EnvVars: []string{"JOBSD_FAIL_ATTEMPTS"},
				Usage: "fault injection: the first N attempts of every job fail"},
			&cli.DurationFlag{Name: "work-delay", EnvVars: []string{"JOBSD_WORK_DELAY"},
				Usage: "fault injection: latency of each profile call"},
			&cli.StringFlag{Name: "ui-user", EnvVars: []string{"JOBSD_UI_USER"},
				Usage: "basic auth user for River UI and /metrics (required on a non-loopback --http-addr)"},
			&cli.StringFlag{Name: "ui-password", EnvVars: []string{"JOBSD_UI_PASSWORD"},
				Usage: "basic auth password for River UI and /metrics (prefer the environment, or JOBSD_UI_PASSWORD_FILE naming a file holding it)"},
			&cli.DurationFlag{Name: "metrics-interval", EnvVars: []string{"JOBSD_METRICS_INTERVAL"}, Value: metrics.IntervalDefault,
				Usage: "how often the jobsd_jobs, jobsd_jobs_backlog* and jobsd_outbox_* gauges are recounted"},
			&cli.Int64Flag{Name: "max-backlog", EnvVars: []string{"JOBSD_MAX_BACKLOG"},
				DefaultText: "0 (no limit)",
				Usage: "POST /signup answers 503 with Retry-After while more than this many jobs wait to run; approximate: " +
					"it reads the count refreshed every --metrics-interval"},
			&cli.Int64Flag{Name: "backlog-warn", EnvVars: []string{"JOBSD_BACKLOG_WARN"}, Value: metrics.BacklogWarnDefault,
				Usage: "log a warning (once per crossing) when this many jobs wait to run; -1 disables it"},
			&cli.DurationFlag{Name: "backlog-warn-age", EnvVars: []string{"JOBSD_BACKLOG_WARN_AGE"}, Value: metrics.BacklogWarnAgeDefault,
				Usage: "log the same warning when the oldest job waiting to run has waited this long; 0 disables it"},
		},
		Before: func(c *cli.Context) error {
			return readSecretFiles(c, []globalFlag{{name: "ui-password", fileEnv: "JOBSD_UI_PASSWORD_FILE"}})
		},
		Action: func(c *cli.Context) error {
			cfg := server.Config{
				HTTPAddr:        c.String("http-addr"),
				Workers:         c.Int("workers"),
				MaxAttempts:     c.Int("max-attempts"),
				JobTimeout:      c.Duration("job-timeout"),
				RescueAfter:     c.Duration("rescue-after"),
				ShutdownTimeout: c.Duration("shutdown-timeout"),
				ReadTimeout:     c.Duration("http-read-timeout"),
				WriteTimeout:    c.Duration("http-write-timeout"),
				IdleTimeout:     c.Duration("http-idle-timeout"),
				PollOnly:        c.Bool("poll-only"),
				MetricsInterval: c.Duration("metrics-interval"),
				MaxBacklog:      c.Int64("max-backlog"),
				BacklogWarn:     c.Int64("backlog-warn"),
				BacklogWarnAge:  backlogWarnAge(c.Duration("backlog-warn-age")),
				UIUser:          c.String("ui-user"),
				UIPassword:      c.String("ui-password"),
				Jobs: jobs.Config{Faults: jobs.Faults{
					FailRate:     c.Float64("fail-rate"),
					FailService:  c.String("fail-service"),
					FailAttempts: c.Int("fail-attempts"),
					Delay:        c.Duration("work-delay"),
				}},
				AMQPURL: c.String("amqp-url"),
				NoRelay: c.Bool("no-relay"),
				Relay: relay.Config{
					Exchange:     c.String("exchange"),
					ExchangeType: c.String("exchange-type"),
					BatchSize:    c.Int("relay-batch"),
					Window:       c.Int("relay-window"),
					PollInterval: c.Duration("relay-poll"),
					Lease:        c.Duration("relay-lease"),
					MaxAttempts:  c.Int("relay-max-attempts"),
					Retention:    outboxRetention(c.Duration("outbox-retention")),
					Mandatory:    c.Bool("relay-mandatory"),
					StrictOrder:  c.Bool("relay-strict-order"),
					Envelope:     c.String("relay-envelope"),
					Source:       c.String("relay-source"),
					AppID:        c.String("app-id"),
				},
			}
			if c.Duration("shutdown-timeout") <= 0 {
				return usagef("--shutdown-timeout must be positive")
			}
			if c.Duration("metrics-interval") <= 0 {
				return usagef("--metrics-interval must be positive")
			}
			if c.Int64("max-backlog") < 0 {
				return usagef("--max-backlog must not be negative (0 means no limit)")
			}
			if n := c.Int64("backlog-warn"); n == 0 || n < -1 {
				return usagef("--backlog-warn must be at least 1, or -1 to disable the warning")
			}
			if c.Int("workers") < 1 || c.Int("max-attempts") < 1 {
				return usagef("--workers and --max-attempts must be at least 1")
			}
			if c.Int("relay-batch") < 1 || c.Int("relay-window") < 1 || c.Int("relay-max-attempts") < 1 {
				return usagef("--relay-batch, --relay-window and --relay-max-attempts must be at least 1")
			}
			if c.String("exchange") == "" {
				return usagef("--exchange must not be empty")
			}
			if t := c.String("exchange-type"); t != relay.ExchangeTopic && t != relay.ExchangeFanout {
				return usagef("--exchange-type must be topic or fanout, got %q", t)
			}
			if err := checkEnvelopeFlags(c, cfg.Relay); err != nil {
				return err
			}
			if err := cfg.Jobs.Faults.Validate(); err != nil {
				return usagef("%v", err)
			}
			if err := cfg.Validate(); err != nil {
				return usagef("%v", err)
			}
			tp, stopTracing, err := setupTracing(c, "jobsd")
			if err != nil {
				return err
			}
			defer stopTracing()
			cfg.TracerProvider = tp
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			if !cfg.NoRelay {
				if err := checkBroker(cfg.AMQPURL, slog.Default()); err != nil {
					pool.Close()
					return err
				}
			}
			srv, err := server.New(pool, cfg)
			if err != nil {
				pool.Close()
				return usagef("%v", err)
			}
			srv.Registry().MustRegister(buildInfo())
			ctx, stop := stopContext(c.Context, slog.Default())
			defer stop()
			err = srv.Run(ctx)
			if errors.Is(err, server.ErrShutdownTimeout) {
				// What did not stop may hold connections: pool.Close would
				// wait for them. The process exits anyway.
				return err
			}
			pool.Close()
			return err
		},
	}
}

// checkEnvelopeFlags checks --relay-envelope, --relay-source and --app-id
// before anything connects: an empty value set on purpose is refused rather
// than taken as the default.
func checkEnvelopeFlags(c *cli.Context, cfg relay.Config) error {
	if e := cfg.Envelope; e != relay.EnvelopeNone && e != relay.EnvelopeCloudEvents {
		return usagef("--relay-envelope must be none or cloudevents, got %q", e)
	}
	if cfg.Source == "" {
		return usagef("--relay-source must not be empty (the CloudEvents source: a URI-reference such as https://example.com/signup)")
	}
	if cfg.AppID == "" {
		return usagef("--app-id must not be empty")
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// backlogWarnAge maps --backlog-warn-age to server.Config.BacklogWarnAge: on
// the command line 0 or a negative duration disables the age warning.
func backlogWarnAge(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// outboxRetention maps --outbox-retention to relay.Config.Retention: on the
// command line 0 means "delete at once".
func outboxRetention(d time.Duration) time.Duration {
	if d == 0 {
		return relay.RetentionDeleteAtOnce
	}
	return d
}
