package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"
)

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "inspect River jobs: list them, or get one with its arguments and errors",
		Subcommands: []*cli.Command{
			jobsListCommand(),
			jobsGetCommand(),
		},
	}
}

func jobsListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list jobs, newest first: id, kind, state, attempt/max, queue, age, last error",
		UsageText: "jobsd jobs list [--state S]... [--kind K]... [--queue Q]... [--limit N] [--json]",
		Description: "The table is cut to the terminal's width (COLUMNS, or 120 when stdout is not a terminal).\n" +
			"States: " + jobStateNames() + ".\n\n" +
			"Examples:\n   jobsd jobs list --state discarded --state retryable\n" +
			"   jobsd jobs list --kind create_profile --limit 10 --json | jq '.[].errors'",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "state", Usage: "only jobs in this state (repeatable)"},
			&cli.StringSliceFlag{Name: "kind", Usage: "only jobs of this kind (repeatable)"},
			&cli.StringSliceFlag{Name: "queue", Usage: "only jobs in this queue (repeatable)"},
			limitFlag(),
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			states, err := parseJobStates(c)
			if err != nil {
				return err
			}
			limit, err := parseLimit(c)
			if err != nil {
				return err
			}
			pool, client, err := openRiver(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			params := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(limit)
			if len(states) > 0 {
				params = params.States(states...)
			}
			if kinds := nonEmpty(c.StringSlice("kind")); len(kinds) > 0 {
				params = params.Kinds(kinds...)
			}
			if queues := nonEmpty(c.StringSlice("queue")); len(queues) > 0 {
				params = params.Queues(queues...)
			}
			res, err := client.JobList(c.Context, params)
			if err != nil {
				return dbError("list jobs", err)
			}
			views := make([]jobView, len(res.Jobs))
			for i, j := range res.Jobs {
				views[i] = newJobView(j)
			}
			if c.Bool("json") {
				return writeJSON(c, views)
			}
			if len(views) == 0 {
				fmt.Fprintln(c.App.Writer, "no jobs match")
				return nil
			}
			now := time.Now()
			t := newTable(c.App.Writer, "ID", "KIND", "STATE", "ATTEMPT", "QUEUE", "AGE", "LAST ERROR")
			for _, v := range views {
				t.row(fmt.Sprint(v.ID), v.Kind, v.State, fmt.Sprintf("%d/%d", v.Attempt, v.MaxAttempts),
					v.Queue, age(now, v.CreatedAt), v.LastError)
			}
			return t.flush()
		},
	}
}

func jobsGetCommand() *cli.Command {
	return &cli.Command{
		Name:        "get",
		Usage:       "show one job: arguments, timestamps and the error of every attempt",
		UsageText:   "jobsd jobs get --id N [--json]",
		Description: "Examples:\n   jobsd jobs get --id 42\n   jobsd jobs get --id 42 --json | jq '.errors[-1].error'",
		Flags:       []cli.Flag{idFlag("the job's id (river_job.id)"), jsonFlag()},
		Action: func(c *cli.Context) error {
			_, job, done, err := loadJob(c)
			if err != nil {
				return err
			}
			done()
			v := newJobView(job)
			if c.Bool("json") {
				return writeJSON(c, v)
			}
			return v.writeText(c)
		},
	}
}

// jobView is a river_job row as jobsd prints it (JSON: snake_case, lists never null).
type jobView struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Queue       string          `json:"queue"`
	Priority    int             `json:"priority"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Args        json.RawMessage `json:"args"`
	Metadata    json.RawMessage `json:"metadata"`
	Tags        []string        `json:"tags"`
	LastError   string          `json:"last_error"`
	Errors      []attemptView   `json:"errors"`
	AttemptedBy []string        `json:"attempted_by"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at"`
	FinalizedAt *time.Time      `json:"finalized_at"`
}

// attemptView is the error of one failed attempt.
type attemptView struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	Trace   string    `json:"trace,omitempty"`
}

func newJobView(j *rivertype.JobRow) jobView {
	v := jobView{
		ID: j.ID, Kind: j.Kind, State: string(j.State), Queue: j.Queue, Priority: j.Priority,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		Args: rawJSON(j.EncodedArgs), Metadata: rawJSON(j.Metadata),
		Tags: j.Tags, AttemptedBy: j.AttemptedBy, Errors: make([]attemptView, len(j.Errors)),
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
	}
	for i, e := range j.Errors {
		v.Errors[i] = attemptView{Attempt: e.Attempt, At: e.At, Error: e.Error, Trace: e.Trace}
	}
	if n := len(j.Errors); n > 0 {
		v.LastError = j.Errors[n-1].Error
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if v.AttemptedBy == nil {
		v.AttemptedBy = []string{}
	}
	return v
}

func rawJSON(b []byte) json.RawMessage {
	if !json.Valid(b) {
		return json.RawMessage("{}")
	}
	return json.RawMessage(b)
}

func (v jobView) writeText(c *cli.Context) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	now := time.Now()
	fmt.Fprintf(tw, "job\t%d\n", v.ID)
	fmt.Fprintf(tw, "kind\t%s\n", v.Kind)
	fmt.Fprintf(tw, "state\t%s\n", v.State)
	fmt.Fprintf(tw, "queue\t%s (priority %d)\n", v.Queue, v.Priority)
	fmt.Fprintf(tw, "attempt\t%d of %d\n", v.Attempt, v.MaxAttempts)
	fmt.Fprintf(tw, "args\t%s\n", v.Args)
	if len(v.Tags) > 0 {
		fmt.Fprintf(tw, "tags\t%s\n", strings.Join(v.Tags, ", "))
	}
	fmt.Fprintf(tw, "created\t%s (%s ago)\n", timestamp(&v.CreatedAt), age(now, v.CreatedAt))
	fmt.Fprintf(tw, "scheduled\t%s\n", timestamp(&v.ScheduledAt))
	attempted := timestamp(v.AttemptedAt)
	if len(v.AttemptedBy) > 0 {
		attempted += " by " + strings.Join(slices.Compact(slices.Clone(v.AttemptedBy)), ", ")
	}
	fmt.Fprintf(tw, "attempted\t%s\n", attempted)
	fmt.Fprintf(tw, "finalized\t%s\n", timestamp(v.FinalizedAt))
	if len(v.Errors) == 0 {
		fmt.Fprintf(tw, "errors\tnone\n")
	}
	for i, e := range v.Errors {
		label := ""
		if i == 0 {
			label = "errors"
		}
		fmt.Fprintf(tw, "%s\t#%d %s %s\n", label, e.Attempt, timestamp(&e.At), oneLine(e.Error))
	}
	return tw.Flush()
}
