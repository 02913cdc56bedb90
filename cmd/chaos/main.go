// Command chaos runs jobsd's fault matrix (`make chaos`): see internal/chaos
// and the README section "Chaos: the fault matrix".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jobsd/jobsd/internal/chaos"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	bin := fs.String("jobsd", "bin/jobsd", "the jobsd binary under test")
	scenarios := fs.String("scenarios", os.Getenv("SCENARIOS"), "space- or comma-separated scenarios to run (default all; env SCENARIOS)")
	duration := fs.Duration("duration", envDuration("CHAOS_DURATION", chaos.DurationDefault), "load per scenario (env CHAOS_DURATION)")
	rate := fs.Int("rate", chaos.RateDefault, "signups per second over HTTP")
	drain := fs.Duration("drain-timeout", chaos.DrainTimeoutDefault, "how long to wait for the drain after the load")
	logDir := fs.String("log-dir", "bin/chaos-logs", "where each scenario's process logs go")
	list := fs.Bool("list", false, "list the scenarios and what each proves, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list {
		for _, sc := range chaos.Scenarios() {
			fmt.Printf("%-18s %s\n", sc.Name, sc.Proves)
		}
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected argument %q (scenarios go in -scenarios or SCENARIOS)\n", fs.Arg(0))
		return 2
	}
	if *duration <= 0 {
		fmt.Fprintln(os.Stderr, "chaos: CHAOS_DURATION / -duration must be positive")
		return 2
	}
	names := strings.FieldsFunc(*scenarios, func(r rune) bool { return r == ' ' || r == ',' })
	if _, err := chaos.Select(names, false); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: jobsd binary %s: %v (run make build)\n", *bin, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, chaos.Config{
		Bin: *bin, Scenarios: names, Duration: *duration, Rate: *rate, DrainTimeout: *drain,
		LogDir: *logDir, Out: os.Stdout, Log: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if !sum.OK() {
		fmt.Fprintf(os.Stderr, "chaos: failed (process logs in %s)\n", *logDir)
		return 1
	}
	return 0
}

// envDuration reads a duration from the environment, def when unset; an
// invalid value gives 0, refused by the caller.
func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0
	}
	return d
}
