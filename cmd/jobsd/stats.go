package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/liveness"
	jsql "github.com/jobsd/jobsd/sql"
)

var (
	statsJobsSQL      = jsql.Statement("stats_jobs")
	statsProcessesSQL = jsql.Statement("stats_processes")
)

// processCount is how many relays or River clients are registered
// (jobsd_process): live, or stale (dead, about to be reaped).
type processCount struct {
	Live  int64 `json:"live"`
	Stale int64 `json:"stale"`
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "one view of the system: jobs by queue and state, and the outbox's backlog",
		UsageText: "jobsd stats [--json]",
		Description: "jobs: for every queue, the number of jobs in each River state (0 included).\n" +
			"outbox: as `jobsd outbox stats`.\n" +
			"processes: relays and River clients registered in jobsd_process, live (seen within 5s) or\n" +
			"stale (dead: a live process of the same kind gives back their leases or running jobs).\n\n" +
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
			rows, err = pool.Query(c.Context, statsProcessesSQL, float64(liveness.Grace)/float64(time.Millisecond))
			if err != nil {
				return dbError("count processes", err)
			}
			type kindCount struct {
				Kind        string
				Live, Stale int64
			}
			kinds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[kindCount])
			if err != nil {
				return dbError("count processes", err)
			}
			processes := map[string]processCount{}
			for _, k := range kinds {
				processes[k.Kind] = processCount{Live: k.Live, Stale: k.Stale}
			}
			if c.Bool("json") {
				return writeJSON(c, map[string]any{"jobs": jobs, "outbox": outbox, "processes": processes})
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
			r, w := processes["relay"], processes["worker"]
			fmt.Fprintf(out, "processes: relays %d live %d stale  workers %d live %d stale\n", r.Live, r.Stale, w.Live, w.Stale)
			return nil
		},
	}
}
