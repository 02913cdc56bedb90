package main

import (
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"

	jsql "github.com/jobsd/jobsd/sql"
)

var statsJobsSQL = jsql.Statement("stats_jobs")

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "one view of the system: jobs by queue and state, and the outbox's backlog",
		UsageText: "jobsd stats [--json]",
		Description: "jobs: for every queue, the number of jobs in each River state (0 included).\n" +
			"outbox: as `jobsd outbox stats`.\n\n" +
			"Examples:\n   jobsd stats\n   jobsd stats --json | jq '.jobs.default.discarded, .outbox.oldest_pending_age_seconds'",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			rows, err := pool.Query(c.Context, statsJobsSQL)
			if err != nil {
				return dbError("count jobs", err)
			}
			type count struct {
				Queue, State string
				N            int64
			}
			counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[count])
			if err != nil {
				return dbError("count jobs", err)
			}
			jobs := map[string]map[string]int64{}
			for _, n := range counts {
				if jobs[n.Queue] == nil {
					jobs[n.Queue] = map[string]int64{}
					for _, s := range rivertype.JobStates() {
						jobs[n.Queue][string(s)] = 0
					}
				}
				jobs[n.Queue][n.State] = n.N
			}
			outbox, err := loadOutboxStats(c, pool, false)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c, map[string]any{"jobs": jobs, "outbox": outbox})
			}
			out := c.App.Writer
			if len(jobs) == 0 {
				fmt.Fprintln(out, "jobs: none")
			} else {
				header := []string{"QUEUE"}
				for _, s := range rivertype.JobStates() {
					header = append(header, string(s))
				}
				t := newTable(out, header...)
				queues := make([]string, 0, len(jobs))
				for q := range jobs {
					queues = append(queues, q)
				}
				slices.Sort(queues)
				for _, q := range queues {
					cells := []string{q}
					for _, s := range rivertype.JobStates() {
						cells = append(cells, fmt.Sprint(jobs[q][string(s)]))
					}
					t.row(cells...)
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "\noutbox: pending %d  published %s  dead %d  oldest pending %s\n",
				outbox.Pending, outbox.publishedText(), outbox.Dead, seconds(outbox.OldestPendingAgeSeconds))
			return nil
		},
	}
}
