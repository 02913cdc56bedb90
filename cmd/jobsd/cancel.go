package main

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"
)

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel a job so that it is not run (again)",
		UsageText: "jobsd cancel --id N [--json]",
		Description: "Uses River's JobCancel. A job waiting in the queue (available, scheduled, retryable,\n" +
			"pending) is cancelled at once. A running job is marked for cancellation: its worker's context\n" +
			"is cancelled, and the job ends cancelled unless it completes first (exit 0, state running).\n" +
			"A job that already ended (completed, discarded) cannot be cancelled: exit 1. Unknown id: exit 1.\n\n" +
			"Examples:\n   jobsd cancel --id 42\n   jobsd cancel --id 42 --json | jq -r .state",
		Flags: []cli.Flag{idFlag("the job to cancel (river_job.id)"), jsonFlag()},
		Action: func(c *cli.Context) error {
			before, job, err := changeJob(c, "cancel", (*river.Client[pgx.Tx]).JobCancel)
			if err != nil {
				return err
			}
			id := job.ID
			switch job.State {
			case rivertype.JobStateCompleted, rivertype.JobStateDiscarded:
				return fmt.Errorf("job %d is already %s, so there is nothing to cancel (`jobsd retry --id %d` runs it again)", id, job.State, id)
			}
			res := retryResult{PreviousState: string(before.State), jobView: newJobView(job)}
			if c.Bool("json") {
				return writeJSON(c, res)
			}
			if job.State == rivertype.JobStateRunning {
				fmt.Fprintf(c.App.Writer, "job %d (%s) is running: cancellation requested; it ends cancelled when its worker returns, unless it completes first\n", job.ID, job.Kind)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "job %d (%s): %s -> %s\n", job.ID, job.Kind, res.PreviousState, job.State)
			return nil
		},
	}
}
