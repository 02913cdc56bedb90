package demo

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printer writes progress: a line refreshed in place on a terminal, plain
// lines otherwise.
type printer struct {
	out         io.Writer
	interactive bool
	open        bool // an in-place line is on screen
}

func (p *printer) header(cfg Config, purged int) {
	addr := cfg.Server.HTTPAddr
	if addr == "" || addr == "-" {
		addr = "(HTTP disabled)"
	} else {
		addr = "http://" + addr + "/riverui/"
	}
	fmt.Fprintf(p.out, "jobsd demo: one signup every %s, profile calls fail with probability %.0f%%\n",
		cfg.Rate, cfg.Server.Jobs.Faults.FailRate*100)
	fmt.Fprintf(p.out, "analytics: exchange %q -> queue %q (emptied at start: %d old messages purged)\n",
		cfg.Relay.Exchange, cfg.Queue, purged)
	fmt.Fprintf(p.out, "River UI: %s   (Ctrl-C stops, drains and prints a summary)\n", addr)
}

func (p *printer) progress(pr Progress) {
	line := time.Now().Format("15:04:05") + " " + pr.line()
	if p.interactive {
		fmt.Fprint(p.out, "\r\033[K"+line)
		p.open = true
		return
	}
	fmt.Fprintln(p.out, line)
}

func (p *printer) note(msg string) {
	if p.open {
		fmt.Fprintln(p.out)
		p.open = false
	}
	fmt.Fprintln(p.out, msg)
}

func (p *printer) summary(s *Summary) {
	pr, l := s.Progress, s.Latency
	var b strings.Builder
	fmt.Fprintf(&b, "summary after %s%s\n", s.Elapsed.Round(time.Second), map[bool]string{true: "", false: " (drain timed out: some work still open, it stays in the database)"}[s.Drained])
	fmt.Fprintf(&b, "  signups            %d\n", pr.Signups)
	fmt.Fprintf(&b, "  profile jobs       %d: %d completed, %d discarded, %d cancelled, %d still open (%d running, %d retrying, %d waiting)\n",
		pr.Jobs, pr.JobsCompleted, pr.JobsDiscarded, pr.JobsCancelled, pr.JobsOpen(), pr.JobsRunning, pr.JobsRetrying, pr.JobsWaiting)
	fmt.Fprintf(&b, "  retries            %d performed; %d attempts failed\n", pr.Retries, pr.Failures)
	fmt.Fprintf(&b, "  analytics events   %d published, %d consumed, %d pending, %d dead\n",
		pr.EventsPublished, pr.EventsConsumed, pr.EventsPending, pr.EventsDead)
	fmt.Fprintf(&b, "  signup -> profiles done   p50 %s  p99 %s  (%d users)\n", secs(l.ProfilesP50), secs(l.ProfilesP99), l.UsersDone)
	fmt.Fprintf(&b, "  commit -> consumed        p50 %s  p99 %s  (%d events)\n", secs(l.ConsumedP50), secs(l.ConsumedP99), l.EventsConsumed)
	p.note(b.String())
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond).String()
}
