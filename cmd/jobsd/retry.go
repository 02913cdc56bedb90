package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"
)

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:  "retry",
		Usage: "make a job (or every job matching --state/--kind/--queue) available to run again now",
		UsageText: "jobsd retry --id N [--json]\n" +
			"   jobsd retry --state S [--kind K] [--queue Q] [--dry-run] [--json]",
		Description: "Uses River's JobRetry: a discarded, cancelled, completed, retryable or scheduled job\n" +
			"becomes available at once (River adds one attempt when it had exhausted them). A running job\n" +
			"is left alone (exit 1): wait for it to finish, or cancel it first. Unknown id: exit 1.\n\n" +
			"The bulk form retries every job in the given states (not running) in one transaction and\n" +
			"prints how many and which; --dry-run only prints them.\n\n" +
			"Examples:\n   jobsd retry --id 42\n" +
			"   jobsd retry --state discarded --kind create_profile --dry-run\n" +
			"   jobsd retry --state discarded --kind create_profile --json",
		Flags: []cli.Flag{
			idFlag("the job to retry (river_job.id)"),
			&cli.StringSliceFlag{Name: "state", Usage: "bulk: retry jobs in this state (repeatable; not running)"},
			&cli.StringSliceFlag{Name: "kind", Usage: "bulk: only jobs of this kind (repeatable)"},
			&cli.StringSliceFlag{Name: "queue", Usage: "bulk: only jobs in this queue (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "bulk: print what would be retried, change nothing"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			bulk := c.IsSet("state") || c.IsSet("kind") || c.IsSet("queue") || c.IsSet("dry-run")
			switch {
			case c.IsSet("id") && bulk:
				return usagef("--id retries one job; --state/--kind/--queue/--dry-run select many: use one form (see 'jobsd retry --help')")
			case bulk:
				return retryMany(c)
			}
			return retryOne(c)
		},
	}
}

// retryResult is what retry and cancel print for one job.
type retryResult struct {
	PreviousState string `json:"previous_state"`
	jobView
}

func retryOne(c *cli.Context) error {
	// River's JobRetry leaves a running job as it is and returns it: the
	// returned state, not the one read before, decides.
	before, job, err := changeJob(c, "retry", (*river.Client[pgx.Tx]).JobRetry)
	if err != nil {
		return err
	}
	id := job.ID
	if job.State == rivertype.JobStateRunning {
		return fmt.Errorf("job %d is running, so it was not retried: wait for it to finish, or `jobsd cancel --id %d` and retry it once it is cancelled", id, id)
	}
	res := retryResult{PreviousState: string(before.State), jobView: newJobView(job)}
	if c.Bool("json") {
		return writeJSON(c, res)
	}
	fmt.Fprintf(c.App.Writer, "job %d (%s): %s -> %s, attempt %d of %d\n",
		job.ID, job.Kind, res.PreviousState, job.State, job.Attempt, job.MaxAttempts)
	return nil
}

// bulkResult is what bulk retry and replay print.
type bulkResult struct {
	DryRun bool    `json:"dry_run"`
	Count  int     `json:"count"`
	IDs    []int64 `json:"ids"`
}

// write prints r as one JSON document with --json, else as
// "<done|wouldDo> N <noun>: ids".
func (r bulkResult) write(c *cli.Context, done, wouldDo, one, many string) error {
	if r.IDs == nil {
		r.IDs = []int64{}
	}
	r.Count = len(r.IDs)
	if c.Bool("json") {
		return writeJSON(c, r)
	}
	verb := done
	if r.DryRun {
		verb = wouldDo
	}
	fmt.Fprintf(c.App.Writer, "%s %d %s: %s\n", verb, r.Count, plural(r.Count, one, many), joinIDs(r.IDs))
	return nil
}

func retryMany(c *cli.Context) error {
	states, err := parseJobStates(c)
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return usagef("bulk retry needs --state, e.g. --state discarded (valid states: %s)", jobStateNames())
	}
	if slices.Contains(states, rivertype.JobStateRunning) {
		return usagef("--state running: River does not retry running jobs; cancel them first")
	}
	pool, client, err := openRiver(c)
	if err != nil {
		return err
	}
	defer pool.Close()

	params := river.NewJobListParams().States(states...).OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(listLimitMax)
	if kinds := nonEmpty(c.StringSlice("kind")); len(kinds) > 0 {
		params = params.Kinds(kinds...)
	}
	if queues := nonEmpty(c.StringSlice("queue")); len(queues) > 0 {
		params = params.Queues(queues...)
	}
	ids := []int64{}
	for {
		res, err := client.JobList(c.Context, params)
		if err != nil {
			return dbError("list jobs to retry", err)
		}
		for _, j := range res.Jobs {
			ids = append(ids, j.ID)
		}
		if len(res.Jobs) < listLimitMax {
			break
		}
		params = params.After(res.LastCursor)
	}

	res := bulkResult{DryRun: c.Bool("dry-run"), IDs: []int64{}}
	if res.DryRun {
		res.IDs = ids
	} else {
		// One transaction: all of them are retried, or none.
		err = pgx.BeginFunc(c.Context, pool, func(tx pgx.Tx) error {
			for _, id := range ids {
				job, err := client.JobRetryTx(c.Context, tx, id)
				if errors.Is(err, rivertype.ErrNotFound) {
					continue // deleted since the list
				}
				if err != nil {
					return err
				}
				if job.State != rivertype.JobStateRunning { // started since the list: left alone
					res.IDs = append(res.IDs, id)
				}
			}
			return nil
		})
		if err != nil {
			return dbError("retry jobs (none was retried)", err)
		}
	}
	return res.write(c, "retried", "would retry", "job", "jobs")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinIDs(ids []int64) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, " ")
}
