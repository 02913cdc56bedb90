package chaos

import (
	"fmt"
	"io"
	"strings"
)

// rowFormat is one row of the table: see printHeader for the columns.
const rowFormat = "%-18s %11s %5s %6s %8s %5s %9s %11s %5s %5s %4s %5s %7s  %-44s %s\n"

func printHeader(w io.Writer) {
	fmt.Fprintf(w, rowFormat, "scenario", "acked/sent", "503", "users", "profiles", "stuck", "pend/dead",
		"applied/pub", "dupP", "dupC", "dupE", "order", "recov", "processes", "result")
}

// printRow prints one scenario's figures: acknowledged signups of those sent,
// refusals (503), users, profiles (3 per user), jobs not completed, events
// pending/dead, events applied by the consumers / published by the relays,
// duplicates published (witness queue), duplicates the consumers' inbox
// absorbed, duplicate effects, per-key order violations, the worst recovery
// after a fault, each process's fate, PASS or FAIL.
func printRow(w io.Writer, r Result) {
	c := r.Counts
	recov := "-"
	if r.Recovery > 0 {
		recov = fmt.Sprintf("%.1fs", r.Recovery.Seconds())
	}
	if !r.Recovered {
		recov = "never"
	}
	result := "PASS"
	if r.Failure != "" || r.Lost+r.LostEvents+r.Dup+r.Order > 0 {
		result = "FAIL"
	}
	fmt.Fprintf(w, rowFormat, r.Name,
		fmt.Sprintf("%d/%d", r.Acked, r.Sent), fmt.Sprint(r.Refused), fmt.Sprint(c.Users), fmt.Sprint(c.Profiles),
		fmt.Sprint(c.JobsStuck), fmt.Sprintf("%d/%d", c.EventsPending, c.EventsDead),
		fmt.Sprintf("%d/%d", c.EventsApplied, c.EventsPublished),
		fmt.Sprint(r.Witness.Messages-r.Witness.Distinct), fmt.Sprint(r.ConsumerDuplicates), fmt.Sprint(r.Dup),
		fmt.Sprint(r.Order), recov, r.Fates, result)
}

// printFailures explains the failed rows, one line each.
func printFailures(w io.Writer, results []Result) {
	for _, r := range results {
		var why []string
		if r.Failure != "" {
			why = append(why, r.Failure)
		}
		if r.Lost > 0 {
			why = append(why, fmt.Sprintf("%d lost jobs (%d acknowledged signups without a user, %d users, %d profiles)",
				r.Lost, r.Counts.AckedMissing, r.Counts.Users, r.Counts.Profiles))
		}
		if r.LostEvents > 0 {
			why = append(why, fmt.Sprintf("%d events never applied by the consumers", r.LostEvents))
		}
		if r.Dup > 0 {
			why = append(why, fmt.Sprintf("%d effects more than events", r.Dup))
		}
		if r.Order > 0 {
			why = append(why, fmt.Sprintf("%d per-key order violations in the witness queue, first: %s",
				r.Order, strings.Join(r.Witness.Examples, "; ")))
		}
		for _, s := range why {
			fmt.Fprintf(w, "%s: %s\n", r.Name, s)
		}
	}
}
