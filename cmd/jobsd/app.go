package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/internal/logging"
	"github.com/jobsd/jobsd/internal/telemetry"
)

// Exit codes, as documented in the README.
const (
	exitOK      = 0
	exitFailure = 1 // failure at run time: not found, database down, ...
	exitUsage   = 2 // bad command line: missing or invalid flag
)

const amqpURLDefault = "amqp://guest:guest@127.0.0.1:5672/"

// usageError is a mistake in the command line; it exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is the whole CLI: it parses args, runs the command and returns the exit
// code. Output goes to stdout, errors and logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	var notFound, where string
	app.CommandNotFound = func(c *cli.Context, name string) {
		notFound, where = name, "jobsd"
		if c.Command != nil && c.Command.HelpName != "" {
			where = c.Command.HelpName
		}
	}
	err := app.RunContext(ctx, args)
	if errors.Is(err, errVersionShown) {
		return exitOK
	}
	if notFound != "" && err == nil {
		err = usagef("unknown command %q (see '%s --help')", notFound, where)
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "jobsd: "+oneLine(err.Error()))
	var usage *usageError
	if errors.As(err, &usage) {
		return exitUsage
	}
	return exitFailure
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "jobsd",
		Usage: "Postgres-backed transactional job queue with an outbox relay to RabbitMQ",
		Description: "An application commits its rows, its critical jobs (River) and its events (outbox)\n" +
			"in one Postgres transaction; jobsd runs the jobs until they succeed and relays the\n" +
			"events to RabbitMQ. Exit codes: 0 success, 1 runtime failure, 2 usage error.",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags:           append(rootFlags(), cli.HelpFlag), // the help command would hide it
		Before: func(c *cli.Context) error {
			if c.Bool("version") {
				fmt.Fprintln(c.App.Writer, readVersion())
				return errVersionShown
			}
			if err := readSecretFiles(c, globalFlagSpecs()); err != nil {
				return err
			}
			return setLogger(c)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the exit code
		Commands: []*cli.Command{
			migrateCommand(),
			serveCommand(),
			signupCommand(),
			consumeCommand(),
			retryCommand(),
			cancelCommand(),
			jobsCommand(),
			outboxCommand(),
			statsCommand(),
			demoCommand(),
			benchCommand(),
			versionCommand(),
			helpCommand(),
		},
	}
	addGlobalFlags(app.Commands)
	app.OnUsageError = onUsageError
	setUsageErrorHandlers(app.Commands)
	return app
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "jobsd"
	if c.Command != nil && c.Command.Name != "" {
		name = c.Command.HelpName
	}
	return usagef("%v (see '%s --help')", err, name)
}

func setUsageErrorHandlers(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		setUsageErrorHandlers(cmd.Subcommands)
	}
}

// newLogger is the logger of --log-format and --log-level, holding the log
// conventions of internal/logging; component names lines that name none.
func newLogger(format, level, component string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("invalid --log-level %q (use debug, info, warn or error)", level)
	}
	h, err := logging.New(format, lvl, w, component)
	if err != nil {
		return nil, usagef("invalid --log-format %q (use text or json)", format)
	}
	// telemetry.LogHandler: a line logged inside a span (slog's *Context
	// methods) carries trace_id and span_id.
	return slog.New(telemetry.LogHandler(h)), nil
}

// openPool connects to --database-url.
func openPool(c *cli.Context) (*pgxpool.Pool, error) {
	return database.Open(c.Context, c.String("database-url"))
}

// oneLine keeps an error to one line on stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
