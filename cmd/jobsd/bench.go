package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/bench"
	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/internal/migrate"
	"github.com/jobsd/jobsd/relay"
	jsql "github.com/jobsd/jobsd/sql"
)

// Defaults of `jobsd bench`: `all` finishes in well under a minute on two cores.
const (
	benchMessagesDefault = 20000
	benchRateDefault     = 500
	benchDurationDefault = 5 * time.Second
	benchDatabaseSuffix  = "_bench"
	benchBacklogSmall    = 30_000
	benchBacklogLarge    = 300_000
	benchNotifyRate      = 2000
)

var benchTruncateSQL = jsql.Statement("bench_truncate")

func benchCommand() *cli.Command {
	sub := func(name, usage string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, Flags: benchFlags(),
			UsageText: "jobsd bench " + name + " [--messages N] [--signups N] [--rate R] [--duration D] [--json]",
			Action:    func(c *cli.Context) error { return runBench(c, name) },
		}
	}
	return &cli.Command{
		Name:      "bench",
		Usage:     "end-to-end benchmark: relay, latency and signups, each as a ratio to a baseline run alongside",
		UsageText: "jobsd bench [relay|latency|signups|all] [--messages N] [--signups N] [--rate R] [--duration D] [--json]",
		Description: "Measures jobsd against a baseline run in the same process, so that the ratios mean\n" +
			"something on a noisy machine:\n" +
			"  relay    the relay draining N pre-inserted outbox rows vs a raw amqp091 publisher with\n" +
			"           pipelined confirms (window 500), 200-byte persistent messages, durable topic\n" +
			"           exchange + quorum queue, until a consumer received all N\n" +
			"  latency  commit->consumer latency of outbox.Write + relay at --rate events/s for\n" +
			"           --duration vs publish->consumer latency of a raw publisher at the same rate\n" +
			"  signups  N/10 signups end to end (user, 3 profile jobs, 1 event; River workers, relay,\n" +
			"           analytics consumer) vs raw River working as many no-op jobs\n" +
			"  backlog  the relay draining --backlog-small and --backlog-large pre-inserted rows over\n" +
			"           1000 keys with no consumer, each vs raw publishing of as many messages to a\n" +
			"           queue nobody consumes (the broker's own limit)\n" +
			"  scale    1, 2 and 4 relays on one database draining N rows (a key per row, then 1000\n" +
			"           keys), vs raw publishing\n" +
			"  notify   NOTIFYs writers send while a relay drains their events at --notify-rate\n" +
			"           commits/s for --duration (before migration 006: one per commit)\n" +
			"  all      all six (default; a few minutes)\n\n" +
			"It writes rows, so it never uses --database-url's database: it uses (and creates,\n" +
			"migrates and empties) <dbname>" + benchDatabaseSuffix + " on the same server. Each measurement\n" +
			"declares its own jobsd.bench.<random> exchange and queue and deletes them afterwards.\n" +
			"Progress goes to stderr; the results table (or one JSON document with --json) to stdout.\n\n" +
			"Examples:\n   jobsd bench\n   jobsd bench relay --messages 50000\n   jobsd bench latency --rate 200 --duration 10s --json",
		Flags: benchFlags(),
		Subcommands: []*cli.Command{
			sub("relay", "relay vs raw publisher throughput"),
			sub("latency", "commit->consumer latency vs the broker alone"),
			sub("signups", "signups end to end vs raw River"),
			sub("backlog", "relay drain rate at a small and a large backlog vs raw publishing"),
			sub("scale", "1, 2 and 4 relays on one database"),
			sub("notify", "notifications per commit under load"),
			sub("all", "relay, latency, signups, backlog, scale and notify"),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown benchmark %q (use relay, latency, signups, backlog, scale, notify or all)", c.Args().First())
			}
			return runBench(c, "all")
		},
	}
}

func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "messages", Value: benchMessagesDefault,
			Usage: "messages per relay measurement"},
		&cli.IntFlag{Name: "signups", DefaultText: "messages/10, at least 10",
			Usage: "signups of the signups measurement"},
		&cli.Float64Flag{Name: "rate", Value: benchRateDefault,
			Usage: "events per second of the latency measurement"},
		&cli.DurationFlag{Name: "duration", Value: benchDurationDefault,
			Usage: "how long each latency measurement sends"},
		&cli.Float64Flag{Name: "notify-rate", Value: benchNotifyRate,
			Usage: "commits per second of the notify measurement"},
		&cli.IntFlag{Name: "backlog-small", Value: benchBacklogSmall,
			Usage: "rows of the backlog measurement's small backlog"},
		&cli.IntFlag{Name: "backlog-large", Value: benchBacklogLarge,
			Usage: "rows of the backlog measurement's large backlog"},
		jsonFlag(),
	}
}

// benchReport is the output of `jobsd bench`.
type benchReport struct {
	Database  string               `json:"database"`
	CPUs      int                  `json:"cpus"`
	GoVersion string               `json:"go_version"`
	Platform  string               `json:"platform"`
	Relay     *bench.RelayResult   `json:"relay,omitempty"`
	Latency   *bench.LatencyResult `json:"latency,omitempty"`
	Signups   *bench.SignupsResult `json:"signups,omitempty"`
	Backlog   *bench.BacklogResult `json:"backlog,omitempty"`
	Scale     *bench.ScaleResult   `json:"scale,omitempty"`
	Notify    *bench.NotifyResult  `json:"notify,omitempty"`
}

func runBench(c *cli.Context, which string) error {
	if c.Args().Present() {
		return usagef("unexpected argument %q (see 'jobsd bench --help')", c.Args().First())
	}
	messages, rate, duration := c.Int("messages"), c.Float64("rate"), c.Duration("duration")
	signups := max(messages/10, 10)
	if c.IsSet("signups") {
		signups = c.Int("signups")
	}
	switch {
	case messages < 1 || messages > 10_000_000:
		return usagef("--messages must be between 1 and 10000000, got %d", messages)
	case signups < 1 || signups > 1_000_000:
		return usagef("--signups must be between 1 and 1000000, got %d", signups)
	case rate <= 0 || rate > 100_000:
		return usagef("--rate must be above 0 and at most 100000, got %v", rate)
	case c.Float64("notify-rate") <= 0 || c.Float64("notify-rate") > 100_000:
		return usagef("--notify-rate must be above 0 and at most 100000, got %v", c.Float64("notify-rate"))
	case c.Int("backlog-small") < 1 || c.Int("backlog-large") < c.Int("backlog-small") || c.Int("backlog-large") > 10_000_000:
		return usagef("--backlog-small must be positive and at most --backlog-large (at most 10000000), got %d and %d",
			c.Int("backlog-small"), c.Int("backlog-large"))
	case duration <= 0 || duration > time.Hour:
		return usagef("--duration must be positive and at most 1h, got %v", duration)
	case rate*duration.Seconds() < 1:
		return usagef("--rate %v for --duration %v sends no event", rate, duration)
	}
	dbURL, dbName, err := benchDatabaseURL(c.String("database-url"))
	if err != nil {
		return usagef("%v", err)
	}
	stderr := c.App.ErrWriter
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "bench: scratch database %s (not --database-url's own)\n", database.Redact(dbURL))
	pool, err := openBenchDatabase(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	ctx = bench.WithProgress(ctx, func(msg string) { fmt.Fprintln(stderr, "bench: "+msg) })
	if !c.IsSet("log-level") { // relays and River log their starts at info
		log, _ := newLogger(c.String("log-format"), "warn", "bench", stderr)
		ctx = bench.WithLogger(ctx, log)
	}
	// The benchmarks measure one broker: the first of the list.
	amqpURL := ""
	if urls := relay.SplitURLs(c.String("amqp-url")); len(urls) > 0 {
		amqpURL = urls[0]
	}
	if _, err := amqp.ParseURI(amqpURL); err != nil { // its error would show the password
		return usagef("invalid --amqp-url %s (expected amqp://user:password@host:port/vhost)", database.Redact(amqpURL))
	}
	rep := benchReport{Database: dbName, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if which == "relay" || which == "all" {
		r, err := bench.Relay(ctx, pool, amqpURL, messages)
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Relay = &r
	}
	if which == "latency" || which == "all" {
		r, err := bench.Latency(ctx, pool, amqpURL, rate, duration)
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Latency = &r
	}
	if which == "signups" || which == "all" {
		r, err := bench.Signups(ctx, pool, amqpURL, signups)
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Signups = &r
	}
	if which == "backlog" || which == "all" {
		r, err := bench.Backlog(ctx, pool, amqpURL, c.Int("backlog-small"), c.Int("backlog-large"))
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Backlog = &r
	}
	if which == "scale" || which == "all" {
		r, err := bench.Scale(ctx, pool, amqpURL, messages)
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Scale = &r
	}
	if which == "notify" || which == "all" {
		r, err := bench.Notify(ctx, pool, amqpURL, c.Float64("notify-rate"), duration)
		if err != nil {
			return benchError(ctx, err)
		}
		rep.Notify = &r
	}
	if c.Bool("json") {
		return writeJSON(c, rep)
	}
	return printBench(c.App.Writer, rep, rate, duration)
}

func benchError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("bench interrupted")
	}
	return fmt.Errorf("bench: %w", err)
}

// benchDatabaseURL returns databaseURL with its database name suffixed with
// benchDatabaseSuffix, and that name.
func benchDatabaseURL(databaseURL string) (string, string, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	u, uerr := url.Parse(databaseURL)
	if err != nil || uerr != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", fmt.Errorf("jobsd bench needs a postgres:// --database-url, got %s", database.Redact(databaseURL))
	}
	name := cfg.Database
	if name == "" {
		name = cfg.User
	}
	name += benchDatabaseSuffix
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), name, nil
}

// openBenchDatabase creates the scratch database if needed, migrates it and
// empties jobsd's tables.
func openBenchDatabase(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	if _, err := database.EnsureExists(ctx, dbURL); err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if _, err := migrate.Up(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", database.Redact(dbURL), err)
	}
	if _, err := pool.Exec(ctx, benchTruncateSQL); err != nil {
		pool.Close()
		return nil, fmt.Errorf("empty the scratch database: %w", err)
	}
	return pool, nil
}

func printBench(w io.Writer, rep benchReport, rate float64, duration time.Duration) error {
	fmt.Fprintf(w, "jobsd bench: %d CPUs, %s %s, database %s\n\n", rep.CPUs, rep.GoVersion, rep.Platform, rep.Database)
	t := newTable(w, "MEASUREMENT", "BASELINE", "JOBSD", "JOBSD/BASELINE")
	if r := rep.Relay; r != nil {
		t.row(fmt.Sprintf("relay, %d msgs (msg/s)", r.Raw.Messages), fmt.Sprintf("raw publish %.0f", r.Raw.Rate),
			fmt.Sprintf("relay %.0f", r.Relay.Rate), fmt.Sprintf("%.2f", r.Ratio))
		t.row(fmt.Sprintf("relay, %d keys (msg/s)", bench.HotKeys), fmt.Sprintf("raw publish %.0f", r.Raw.Rate),
			fmt.Sprintf("relay %.0f", r.RelayHotKeys.Rate), fmt.Sprintf("%.2f", r.RatioHotKeys))
		t.row("relay vs no-consumer raw (msg/s)", fmt.Sprintf("raw, no consumer %.0f", r.RawNoConsumer.Rate),
			fmt.Sprintf("relay %.0f", r.Relay.Rate), fmt.Sprintf("%.2f", r.Relay.Rate/r.RawNoConsumer.Rate))
	}
	if r := rep.Backlog; r != nil {
		t.row(fmt.Sprintf("backlog %d, no consumer (ev/s)", r.Small.Messages), fmt.Sprintf("raw, no consumer %.0f", r.RawSmall.Rate),
			fmt.Sprintf("relay %.0f", r.Small.Rate), fmt.Sprintf("%.2f", r.SmallOverRaw))
		t.row(fmt.Sprintf("backlog %d, no consumer (ev/s)", r.Large.Messages), fmt.Sprintf("raw, no consumer %.0f", r.RawLarge.Rate),
			fmt.Sprintf("relay %.0f", r.Large.Rate), fmt.Sprintf("%.2f", r.LargeOverRaw))
		t.row("backlog large/small (relay rate)", fmt.Sprintf("relay %d: %.0f", r.Small.Messages, r.Small.Rate),
			fmt.Sprintf("relay %d: %.0f", r.Large.Messages, r.Large.Rate), fmt.Sprintf("%.2f", r.LargeOverSmall))
	}
	if r := rep.Scale; r != nil {
		for _, keys := range []struct {
			name string
			runs map[int]bench.Throughput
		}{{"a key per row", r.UniqueKeys}, {fmt.Sprintf("%d keys", bench.BacklogKeys), r.HotKeys}} {
			for _, n := range []int{1, 2, 4} {
				t.row(fmt.Sprintf("scale, %d relay(s), %s (ev/s)", n, keys.name), fmt.Sprintf("raw, no consumer %.0f", r.Raw.Rate),
					fmt.Sprintf("relays %.0f", keys.runs[n].Rate), fmt.Sprintf("%.2f", keys.runs[n].Rate/r.Raw.Rate))
			}
		}
	}
	if r := rep.Notify; r != nil {
		t.row(fmt.Sprintf("NOTIFYs at %.0f commits/s (per s)", r.CommitRate), fmt.Sprintf("one per commit: %.0f", r.CommitRate),
			fmt.Sprintf("%.0f", r.NotificationRate), fmt.Sprintf("%.3f", r.PerCommit))
	}
	if r := rep.Latency; r != nil {
		t.row(fmt.Sprintf("latency p50 at %.0f/s (ms)", rate), fmt.Sprintf("broker %.2f", r.Broker.P50),
			fmt.Sprintf("relay %.2f", r.Relay.P50), fmt.Sprintf("%.2f", r.P50Ratio))
		t.row("latency p99 (ms)", fmt.Sprintf("broker %.2f", r.Broker.P99),
			fmt.Sprintf("relay %.2f", r.Relay.P99), fmt.Sprintf("%.2f", r.P99Ratio))
	}
	if r := rep.Signups; r != nil {
		t.row(fmt.Sprintf("signups, %d (jobs/s)", r.Signups), fmt.Sprintf("raw River %.0f", r.RawJobRate),
			fmt.Sprintf("signups %.0f (%.0f signups/s)", r.JobRate, r.SignupRate), fmt.Sprintf("%.2f", r.RatioToRaw))
	}
	if err := t.flush(); err != nil {
		return err
	}
	var notes []string
	if rep.Relay != nil {
		raw := make([]string, len(rep.Relay.RawRuns))
		for i, r := range rep.Relay.RawRuns {
			raw[i] = fmt.Sprintf("%.0f", r.Rate)
		}
		notes = append(notes, "relay: N outbox rows pre-inserted, then timed from relay start until a consumer received all N;\n"+
			"  baseline: raw amqp091 publisher, confirms pipelined (window 500), same consumer, run before and\n"+
			"  after the relay ("+strings.Join(raw, " and ")+" msg/s), the faster one counts. 200-byte persistent\n"+
			"  messages, durable topic exchange, quorum queue.")
	}
	if rep.Latency != nil {
		notes = append(notes, fmt.Sprintf("latency: %d events at %.0f/s for %v (achieved: relay %.0f/s, broker %.0f/s), each\n"+
			"  outbox.Write in its own transaction, from commit returned to consumer received;\n"+
			"  baseline: raw publisher, from publish to consumer received.",
			rep.Latency.Relay.Events, rate, duration, rep.Latency.Relay.Rate, rep.Latency.Broker.Rate))
	}
	if r := rep.Signups; r != nil {
		notes = append(notes, fmt.Sprintf("signups: %d signups from 8 goroutines (user + 3 profile jobs + 1 event per transaction),\n"+
			"  until %d profile jobs completed (River: %d workers, fetch cooldown %v) and %d events consumed\n"+
			"  (relay + consumer); baseline: raw River, 3 no-op jobs per InsertMany transaction, same River config.",
			r.Signups, r.Jobs, r.RiverWorker, bench.RiverFetchCooldown, r.Signups))
	}
	if rep.Backlog != nil || rep.Scale != nil {
		notes = append(notes, fmt.Sprintf("backlog, scale: rows pre-inserted over %d keys (outside the timing), timed from relay start\n"+
			"  until no row is pending (every message confirmed and marked); no consumer on the quorum queue.\n"+
			"  Baseline: raw amqp091 publisher, window 500, same queue type, no consumer, as many messages.", bench.BacklogKeys))
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	return err
}
