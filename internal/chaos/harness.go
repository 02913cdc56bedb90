package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of Config.
const (
	DurationDefault     = 30 * time.Second
	RateDefault         = 20
	DrainTimeoutDefault = 2 * time.Minute
)

// Config configures a run of the fault matrix.
type Config struct {
	// Bin is the jobsd executable under test (required).
	Bin string
	// Scenarios to run, by name; empty runs them all.
	Scenarios []string
	// Duration of each scenario's load. Default DurationDefault.
	Duration time.Duration
	// Rate is the signups per second sent over HTTP. Default RateDefault.
	Rate int
	// DrainTimeout bounds the wait, after the load, for everything to be
	// done. Default DrainTimeoutDefault.
	DrainTimeout time.Duration
	// LogDir receives each scenario's process logs (required).
	LogDir string
	// External, when set, runs on existing servers instead of starting a
	// Postgres and a RabbitMQ cluster: each scenario still gets its own
	// database, exchange and queues, and only scenarios that do not restart,
	// stop or exhaust a server may run.
	External *External
	// Out receives the table and the summary line; Log the progress.
	Out, Log io.Writer
}

// External names servers the harness may create databases, exchanges and
// queues on, without stopping or reconfiguring them.
type External struct {
	DatabaseURL string // of a database on the server; scenario databases are created beside it
	AMQPURL     string
}

// Harness runs scenarios on its own servers.
type Harness struct {
	cfg    Config
	dir    string
	pg     *Postgres
	rabbit *Rabbit
	logMu  sync.Mutex
}

// Summary totals a run.
type Summary struct {
	Results                             []Result
	Lost, LostEvents, Duplicates, Order int64
	Failed                              int
}

// OK reports whether nothing was lost, duplicated or reordered and every row
// passed its checks.
func (s Summary) OK() bool {
	return s.Lost == 0 && s.LostEvents == 0 && s.Duplicates == 0 && s.Order == 0 && s.Failed == 0
}

// Select returns the scenarios named, in matrix order, or an error naming the
// unknown ones.
func Select(names []string, external bool) ([]Scenario, error) {
	all := Scenarios()
	if len(names) == 0 {
		if external {
			var out []Scenario
			for _, sc := range all {
				if !sc.NeedsCluster {
					out = append(out, sc)
				}
			}
			return out, nil
		}
		return all, nil
	}
	want := make(map[string]bool)
	for _, n := range names {
		want[n] = true
	}
	var out []Scenario
	for _, sc := range all {
		if want[sc.Name] {
			if external && sc.NeedsCluster {
				return nil, fmt.Errorf("scenario %s restarts or exhausts a server: it runs only on the harness's own servers", sc.Name)
			}
			out = append(out, sc)
			delete(want, sc.Name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		return nil, fmt.Errorf("unknown scenario(s) %s (see -list)", strings.Join(unknown, ", "))
	}
	return out, nil
}

// Run starts the servers (unless External), runs the scenarios, prints one
// row per scenario and the summary line, and removes the servers, also when
// ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = DurationDefault
	}
	if cfg.Rate <= 0 {
		cfg.Rate = RateDefault
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DrainTimeoutDefault
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	scenarios, err := Select(cfg.Scenarios, cfg.External != nil)
	if err != nil {
		return Summary{}, err
	}
	h := &Harness{cfg: cfg}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return Summary{}, err
	}
	if cfg.External == nil {
		if err := h.startServers(ctx); err != nil {
			h.stopServers()
			return Summary{}, err
		}
		defer h.stopServers()
	}
	var sum Summary
	dirty := false // the last scenario may have left a node stopped or an alarm
	printHeader(cfg.Out)
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		if dirty {
			if err := h.healServers(ctx); err != nil {
				return sum, err
			}
		}
		dirty = sc.NeedsCluster
		h.logf("%s: start", sc.Name)
		res := h.runScenario(ctx, sc)
		if ctx.Err() != nil {
			break
		}
		if res.Failure != "" {
			h.logf("%s: FAIL: %s", sc.Name, res.Failure)
		}
		printRow(cfg.Out, res)
		sum.Results = append(sum.Results, res)
		sum.Lost += res.Lost
		sum.LostEvents += res.LostEvents
		sum.Duplicates += res.Dup
		sum.Order += res.Order
		if res.Failure != "" || res.Lost+res.LostEvents+res.Dup+res.Order > 0 {
			sum.Failed++
		}
	}
	if ctx.Err() != nil {
		return sum, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	printFailures(cfg.Out, sum.Results)
	fmt.Fprintf(cfg.Out, "chaos: %d scenarios, %d lost jobs, %d lost events, %d duplicate effects, %d order violations\n",
		len(sum.Results), sum.Lost, sum.LostEvents, sum.Duplicates, sum.Order)
	return sum, nil
}

func (h *Harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *Harness) startServers(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "jobsd-chaos-")
	if err != nil {
		return err
	}
	h.dir = dir
	h.logf("starting Postgres and a 3-node RabbitMQ cluster in %s", dir)
	var wg sync.WaitGroup
	var pgErr, rabbitErr error
	wg.Go(func() { h.pg, pgErr = StartPostgres(ctx, PGBinDirDefault, dir) })
	wg.Go(func() { h.rabbit, rabbitErr = StartRabbit(ctx, dir, randomHex(2), 3) })
	wg.Wait()
	if err := errors.Join(pgErr, rabbitErr); err != nil {
		return err
	}
	h.logf("Postgres at %s, RabbitMQ nodes at %s", h.pg.URL("postgres"), h.rabbit.URLs(0))
	return nil
}

// stopServers stops the harness's servers and removes their directory.
func (h *Harness) stopServers() {
	if h.dir == "" {
		return
	}
	h.logf("stopping the servers, removing %s", h.dir)
	var wg sync.WaitGroup
	if h.pg != nil {
		wg.Go(func() { _ = h.pg.Stop() })
	}
	if h.rabbit != nil {
		wg.Go(func() { _ = h.rabbit.Stop() })
	}
	wg.Wait()
	_ = os.RemoveAll(h.dir)
}

// healServers undoes what a scenario may have left: a stopped node, an alarm.
func (h *Harness) healServers(ctx context.Context) error {
	if h.rabbit == nil {
		return nil
	}
	if err := h.startStoppedNodes(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(h.rabbit.Nodes))
	for i, n := range h.rabbit.Nodes {
		wg.Go(func() {
			if _, err := n.Ctl(ctx, "start_app"); err != nil {
				errs[i] = err
				return
			}
			errs[i] = n.SetMemoryWatermark(ctx, "0.4")
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startStoppedNodes starts, in parallel, the nodes that do not run: nodes of
// a stopped cluster wait for each other at boot.
func (h *Harness) startStoppedNodes(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.rabbit.Nodes))
	for i, n := range h.rabbit.Nodes {
		if !n.Running() {
			wg.Go(func() { errs[i] = n.Start(ctx) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (h *Harness) amqpURLs(first int) string {
	if h.cfg.External != nil {
		return h.cfg.External.AMQPURL
	}
	return h.rabbit.URLs(first)
}

func (h *Harness) adminURL() string {
	if h.cfg.External != nil {
		return h.cfg.External.DatabaseURL
	}
	return h.pg.URL("postgres")
}

func (h *Harness) dbURL(db string) string {
	u, err := url.Parse(h.adminURL())
	if err != nil {
		return ""
	}
	u.Path = "/" + db
	return u.String()
}

func (h *Harness) createDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, h.adminURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	return err
}

func (h *Harness) dropDatabase(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.adminURL())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}
