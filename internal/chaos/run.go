package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Flags every serve gets: recovery as configured by default (a dead relay's
// leased rows and a dead worker's running jobs go to the survivors within
// seconds through internal/liveness, with the 30 s lease and River's 1 h
// rescuer untouched), per-key order kept through broker nacks
// (--relay-strict-order: a node kill makes quorum queues nack for a moment),
// published rows kept so that they can be counted, and the backlog recounted
// every second.
var serveFlags = []string{
	"--relay-strict-order",
	"--outbox-retention", "-1s", "--metrics-interval", "1s",
}

// Result is one scenario's row.
type Result struct {
	Name                  string
	Sent, Acked, Refused  int64
	Counts                counts
	Witness               witness
	ConsumerDuplicates    int64
	Recovery              time.Duration // worst recovery over the scenario's faults; 0 when it has none
	Recovered             bool          // every fault was followed by a recovery
	Drained               bool
	Fates                 string
	Failure               string // a failed check or error, "" when the row passes
	Lost, LostEvents, Dup int64
	Order                 int64
}

// fault is one injected fault and its recovery.
type fault struct {
	what       string
	start, end time.Time
	recovered  time.Duration // -1 until recovered
}

// run is one scenario being run.
type run struct {
	ctx       context.Context // the whole run's (ends on Ctrl-C), not the load's
	h         *Harness
	sc        Scenario
	db        string
	pool      *pgxpool.Pool
	queue     string
	serves    []*Proc
	consumers []*Proc
	load      *load
	start     time.Time
	duration  time.Duration
	logf      func(format string, args ...any)

	mu     sync.Mutex
	faults []*fault
	wg     sync.WaitGroup // recovery pollers
}

func (r *run) procs() []*Proc { return append(append([]*Proc(nil), r.serves...), r.consumers...) }

// elapsed is the fraction of the load's duration gone.
func (r *run) elapsed() float64 { return time.Since(r.start).Seconds() / r.duration.Seconds() }

// at waits until the given fraction of the load's duration; false if ctx ended.
func (r *run) at(ctx context.Context, frac float64) bool {
	sleep(ctx, time.Until(r.start.Add(time.Duration(frac*float64(r.duration)))))
	return ctx.Err() == nil
}

func (r *run) note(format string, args ...any) { r.logf("  "+format, args...) }

// fault injects one fault with fn and starts measuring its recovery: the time
// from the fault's end (for a kill, the kill) until every event and job
// written before it is done and every process is healthy.
func (r *run) fault(ctx context.Context, what string, fn func() error) error {
	f := &fault{what: what, start: time.Now(), recovered: -1}
	r.note("fault: %s", what)
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	f.end = time.Now()
	r.mu.Lock()
	r.faults = append(r.faults, f)
	r.mu.Unlock()
	r.wg.Go(func() { r.measureRecovery(ctx, f) })
	return nil
}

func (r *run) measureRecovery(ctx context.Context, f *fault) {
	// Until the scenario's drain ends (ctx is the load's, which ends first).
	deadline := r.start.Add(r.duration + r.h.cfg.DrainTimeout)
	var m marks
	for time.Now().Before(deadline) {
		var err error
		if m, err = readMarks(context.Background(), r.pool); err == nil {
			break
		}
		time.Sleep(pollInterval)
	}
	lastNote := time.Now()
	for time.Now().Before(deadline) {
		events, jobs, err := behind(context.Background(), r.pool, m, r.queue)
		unhealthy := r.unhealthy(context.Background())
		if err == nil && events == 0 && jobs == 0 && len(unhealthy) == 0 {
			r.mu.Lock()
			f.recovered = time.Since(f.end)
			r.mu.Unlock()
			r.note("recovered from %s in %.1fs", f.what, f.recovered.Seconds())
			return
		}
		if time.Since(lastNote) >= 5*time.Second {
			r.note("after %s: %d events, %d jobs behind, unhealthy %v (err %v)", f.what, events, jobs, unhealthy, err)
			lastNote = time.Now()
		}
		time.Sleep(pollInterval)
	}
}

// scrapeDuplicates reads the consumers' duplicate counts every second while
// ctx lasts, so that an incarnation later killed has counted.
func (r *run) scrapeDuplicates(ctx context.Context) {
	for ctx.Err() == nil {
		for _, c := range r.consumers {
			c.scrapeDuplicates(ctx, r.queue)
		}
		sleep(ctx, time.Second)
	}
}

func (r *run) allHealthy(ctx context.Context) bool { return len(r.unhealthy(ctx)) == 0 }

// unhealthy names the processes that are not healthy.
func (r *run) unhealthy(ctx context.Context) []string {
	var names []string
	for _, p := range r.procs() {
		if why := p.unhealthy(ctx); why != "" {
			names = append(names, p.Name+" ("+why+")")
		}
	}
	return names
}

// relaysBlocked reports whether a serve's relay says the broker blocks it.
func (r *run) relaysBlocked(ctx context.Context) bool {
	for _, p := range r.serves {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var body struct {
			Broker string `json:"broker"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Broker == "blocked" {
			return true
		}
	}
	return false
}

// runScenario runs one scenario on a fresh database and fresh exchange and
// queues, and measures it.
func (h *Harness) runScenario(ctx context.Context, sc Scenario) (res Result) {
	res = Result{Name: sc.Name}
	fail := func(err error) Result {
		res.Failure = err.Error()
		return res
	}
	tag := randomHex(3)
	r := &run{ctx: ctx, h: h, sc: sc, db: "chaos_" + sc.Name + "_" + tag, duration: h.cfg.Duration, logf: h.logf}
	exchange := "chaos." + sc.Name + "." + tag
	r.queue = exchange + ".analytics"
	witnessQueue := exchange + ".witness"
	allURLs := splitURLs(h.amqpURLs(0))

	if err := h.createDatabase(ctx, r.db); err != nil {
		return fail(err)
	}
	defer h.dropDatabase(r.db)
	dbURL := h.dbURL(r.db)
	if out, err := exec.CommandContext(ctx, h.cfg.Bin, "migrate", "--database-url", dbURL).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("jobsd migrate: %v: %s", err, out))
	}
	if err := declareWitness(allURLs, exchange, witnessQueue); err != nil {
		return fail(fmt.Errorf("declare witness queue: %w", err))
	}
	defer deleteTopology(splitURLs(h.amqpURLs(0)), exchange, r.queue, r.queue+".dead", witnessQueue)

	logs := filepath.Join(h.cfg.LogDir, sc.Name+"-*.log")
	var logFiles []*os.File
	defer func() {
		for _, f := range logFiles {
			_ = f.Close()
		}
	}()
	logFor := func(proc string) (*os.File, error) {
		f, err := os.Create(filepath.Join(h.cfg.LogDir, sc.Name+"-"+proc+".log"))
		if err == nil {
			logFiles = append(logFiles, f)
		}
		return f, err
	}

	newAddr := func() (string, error) {
		p, err := freePort()
		return "127.0.0.1:" + strconv.Itoa(p), err
	}
	// Each process lists the nodes starting with its own: serve-a and
	// consume-1 on the first node, serve-b and consume-2 on the second.
	for i := range 2 {
		addr, err := newAddr()
		if err != nil {
			return fail(err)
		}
		args := []string{"consume", "--database-url", dbURL, "--amqp-url", h.amqpURLs(i),
			"--queue", r.queue, "--exchange", exchange, "--http-addr", addr,
			"--inbox-retention", "-1s", "--progress-interval", "0"}
		name := fmt.Sprintf("consume-%d", i+1)
		log, err := logFor(name)
		if err != nil {
			return fail(err)
		}
		r.consumers = append(r.consumers, newProc(name, "consume", h.cfg.Bin, addr, log, args))
	}
	var serveAddrs []string
	for i := range 2 {
		addr, err := newAddr()
		if err != nil {
			return fail(err)
		}
		args := append([]string{"serve", "--database-url", dbURL, "--amqp-url", h.amqpURLs(i),
			"--exchange", exchange, "--http-addr", addr}, serveFlags...)
		args = append(args, sc.ServeArgs...)
		name := "serve-" + string(rune('a'+i))
		log, err := logFor(name)
		if err != nil {
			return fail(err)
		}
		r.serves = append(r.serves, newProc(name, "serve", h.cfg.Bin, addr, log, args))
		serveAddrs = append(serveAddrs, addr)
	}
	procs := r.procs()
	defer func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(func() { p.Stop(30 * time.Second) })
		}
		wg.Wait()
	}()
	for _, p := range procs {
		if err := p.start(); err != nil {
			return fail(err)
		}
	}
	if err := waitFor(ctx, time.Minute, func() (bool, error) { return r.allHealthy(ctx), nil }); err != nil {
		return fail(fmt.Errorf("processes not healthy at start (see %s): %w", logs, err))
	}

	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fail(err)
	}
	poolCfg.MaxConns = orderKeys + 4
	r.pool, err = pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fail(err)
	}
	defer r.pool.Close()

	h.logf("%s: load for %v at %d signups/s", sc.Name, r.duration, h.cfg.Rate)
	r.load = newLoad(serveAddrs, r.pool, r.db, h.cfg.Rate)
	r.start = time.Now()
	loadCtx, stopLoad := context.WithDeadline(ctx, r.start.Add(r.duration))
	defer stopLoad()
	r.load.run(loadCtx)
	r.wg.Go(func() { r.scrapeDuplicates(loadCtx) })
	var faultErr error
	if sc.Fault != nil {
		faultErr = sc.Fault(loadCtx, r)
	}
	<-loadCtx.Done()
	r.load.wait()
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if faultErr != nil && loadCtx.Err() == nil {
		res.Failure = faultErr.Error()
	} else if faultErr != nil && len(r.faults) == 0 {
		res.Failure = "fault: " + faultErr.Error()
	}

	// Drain: everything written is done and every process healthy.
	drainStart := time.Now()
	var end marks
	res.Drained = waitFor(ctx, h.cfg.DrainTimeout, func() (bool, error) {
		if end == (marks{}) {
			m, err := readMarks(ctx, r.pool)
			if err != nil {
				return false, err
			}
			end = m
		}
		events, jobs, err := behind(ctx, r.pool, end, r.queue)
		if err != nil {
			return false, err
		}
		for _, c := range r.consumers {
			c.scrapeDuplicates(ctx, r.queue)
		}
		return events == 0 && jobs == 0 && r.allHealthy(ctx), nil
	}) == nil
	h.logf("%s: drained=%v in %.1fs", sc.Name, res.Drained, time.Since(drainStart).Seconds())
	r.wg.Wait()
	for _, c := range r.consumers {
		c.scrapeDuplicates(ctx, r.queue)
		res.ConsumerDuplicates += c.Duplicates()
	}

	acked := r.load.ackedEmails()
	res.Sent, res.Acked, res.Refused = r.load.sent.Load(), int64(len(acked)), r.load.refused.Load()
	if res.Counts, err = readCounts(ctx, r.pool, r.queue, acked); err != nil {
		return fail(fmt.Errorf("read counts: %w", err))
	}
	if res.Witness, err = readWitness(splitURLs(h.amqpURLs(0)), witnessQueue); err != nil {
		return fail(err)
	}
	for _, p := range procs {
		p.Stop(30 * time.Second)
	}
	res.Fates = ""
	for i, p := range procs {
		if i > 0 {
			res.Fates += " "
		}
		res.Fates += shortName(p.Name) + ":" + p.Fate()
	}
	res.Recovered = true
	for _, f := range r.faults {
		if f.recovered < 0 {
			res.Recovered = false
		} else if f.recovered > res.Recovery {
			res.Recovery = f.recovered
		}
	}
	c := res.Counts
	res.Lost = 3*c.AckedMissing + max(0, 3*c.Users-c.Profiles)
	res.LostEvents = c.EventsNotApplied
	res.Dup = max(0, c.Effects-c.Events)
	res.Order = res.Witness.Violations
	switch {
	case res.Failure != "":
	case !res.Drained:
		res.Failure = fmt.Sprintf("not drained within %v (see %s)", h.cfg.DrainTimeout, logs)
	case !res.Recovered:
		res.Failure = "a fault was never recovered from"
	case sc.Check != nil:
		res.Failure = sc.Check(r, &res)
	}
	return res
}

func shortName(name string) string {
	switch name {
	case "serve-a":
		return "sA"
	case "serve-b":
		return "sB"
	case "consume-1":
		return "c1"
	case "consume-2":
		return "c2"
	}
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
