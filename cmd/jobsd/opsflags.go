package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"
)

// Flags and helpers shared by the operator commands (retry, cancel, jobs,
// outbox, stats).

const (
	listLimitDefault = 50
	listLimitMax     = 10_000 // River's JobList page limit
)

func idFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "id", Usage: usage}
}

func limitFlag() cli.Flag {
	return &cli.IntFlag{Name: "limit", Value: listLimitDefault, Usage: fmt.Sprintf("at most this many rows (1-%d)", listLimitMax)}
}

// parseID reads --id as a positive integer. noun names the thing ("job").
func parseID(c *cli.Context) (int64, error) {
	if !c.IsSet("id") {
		return 0, usagef("missing --id (see '%s --help')", c.Command.HelpName)
	}
	raw := c.String("id")
	id, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || id < 1 {
		return 0, usagef("invalid --id %q: want a positive integer such as --id 42", raw)
	}
	return id, nil
}

// parseLimit reads --limit.
func parseLimit(c *cli.Context) (int, error) {
	n := c.Int("limit")
	if n < 1 || n > listLimitMax {
		return 0, usagef("invalid --limit %d: want 1 to %d", n, listLimitMax)
	}
	return n, nil
}

// jobStateNames lists River's job states, for usage errors.
func jobStateNames() string {
	names := make([]string, 0, 8)
	for _, s := range rivertype.JobStates() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// parseJobStates reads the repeatable --state flag as River job states.
func parseJobStates(c *cli.Context) ([]rivertype.JobState, error) {
	var states []rivertype.JobState
	for _, raw := range c.StringSlice("state") {
		s := rivertype.JobState(strings.ToLower(strings.TrimSpace(raw)))
		if !slices.Contains(rivertype.JobStates(), s) {
			return nil, usagef("invalid --state %q (valid states: %s)", raw, jobStateNames())
		}
		if !slices.Contains(states, s) {
			states = append(states, s)
		}
	}
	return states, nil
}

// nonEmpty returns the flag's values without blanks.
func nonEmpty(values []string) []string {
	out := values[:0:0]
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// openRiver connects to the database and returns an insert-only River client
// (no workers, no queues): enough to get, list, retry and cancel jobs.
func openRiver(c *cli.Context) (*pgxpool.Pool, *river.Client[pgx.Tx], error) {
	pool, err := openPool(c)
	if err != nil {
		return nil, nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("river client: %w", err)
	}
	return pool, client, nil
}

// dbError wraps a query error with what was being done and, for a database
// that lacks jobsd's tables, what to do about it.
func dbError(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42704") {
		return fmt.Errorf("%s: %s (is the database migrated? run `jobsd migrate`)", what, pgErr.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// loadJob parses --id, opens River and reads the job. Call done when
// finished with the client. An unknown id is "job N not found" (exit 1).
func loadJob(c *cli.Context) (client *river.Client[pgx.Tx], job *rivertype.JobRow, done func(), err error) {
	id, err := parseID(c)
	if err != nil {
		return nil, nil, nil, err
	}
	pool, client, err := openRiver(c)
	if err != nil {
		return nil, nil, nil, err
	}
	job, err = client.JobGet(c.Context, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		err = fmt.Errorf("job %d not found", id)
	} else if err != nil {
		err = dbError(fmt.Sprintf("get job %d", id), err)
	}
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return client, job, pool.Close, nil
}

// changeJob reads job --id and applies change to it, River's JobRetry or
// JobCancel as a method expression; it returns the job before and after.
func changeJob(c *cli.Context, verb string,
	change func(*river.Client[pgx.Tx], context.Context, int64) (*rivertype.JobRow, error),
) (before, after *rivertype.JobRow, err error) {
	client, before, done, err := loadJob(c)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	after, err = change(client, c.Context, before.ID)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, nil, fmt.Errorf("job %d not found (deleted meanwhile)", before.ID)
	}
	if err != nil {
		return nil, nil, dbError(fmt.Sprintf("%s job %d", verb, before.ID), err)
	}
	return before, after, nil
}
