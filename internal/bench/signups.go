package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/jobsd/jobsd/consumer"
	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/relay"
	"github.com/jobsd/jobsd/signup"
	jsql "github.com/jobsd/jobsd/sql"
)

// signupWriters is how many goroutines sign users up (or insert the
// baseline's jobs) at once, like concurrent HTTP requests.
const signupWriters = 8

// RiverWorkers and RiverFetchCooldown configure both River clients. River
// fetches at most the free worker slots once per FetchCooldown, so River's
// default (100ms) with `jobsd serve`'s 10 workers caps a process at about
// 100 jobs/s whatever the jobs cost: that would measure the cap on both sides
// instead of the work.
const (
	RiverWorkers       = 100
	RiverFetchCooldown = 10 * time.Millisecond
)

var (
	jobsCompletedSQL = jsql.Statement("bench_jobs_completed")
	jobsMaxIDSQL     = jsql.Statement("bench_jobs_max_id")
)

// SignupsResult compares n signups, end to end, with raw River working the
// same number of jobs.
type SignupsResult struct {
	Signups     int     `json:"signups"`
	Jobs        int     `json:"jobs"`
	Seconds     float64 `json:"seconds"`
	SignupRate  float64 `json:"signups_per_sec"`
	JobRate     float64 `json:"jobs_per_sec"`
	RawJobs     int     `json:"raw_river_jobs"`
	RawSeconds  float64 `json:"raw_river_seconds"`
	RawJobRate  float64 `json:"raw_river_jobs_per_sec"`
	RatioToRaw  float64 `json:"jobs_ratio_to_raw_river"`
	RiverWorker int     `json:"river_workers"`
}

// Signups measures n signups end to end: signupWriters goroutines call
// signup.Service.Signup (user row + 3 unique create_profile jobs + outbox
// event in one transaction); River workers (jobs.AddWorkers, RiverWorkers)
// create the 3n profiles, a relay.Relay publishes the n events
// and a consumer.Consumer records them in consumer_inbox/analytics_counts.
// The clock runs from the first signup until all 3n jobs are completed and all
// n events consumed.
//
// The baseline runs first: raw River, with the same writers, each inserting
// 3 trivial jobs per transaction with InsertMany (n transactions), worked by
// a no-op worker with the same MaxWorkers; the clock runs until all 3n are
// completed. Completion is polled in river_job every 20ms on both sides.
func Signups(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n int) (SignupsResult, error) {
	if n < 1 {
		return SignupsResult{}, fmt.Errorf("bench: n must be positive, got %d", n)
	}
	res := SignupsResult{Signups: n, Jobs: 3 * n, RawJobs: 3 * n, RiverWorker: RiverWorkers}
	raw, err := rawRiver(ctx, pool, n)
	if err != nil {
		return res, err
	}
	res.RawSeconds, res.RawJobRate = raw.Seconds(), float64(res.RawJobs)/raw.Seconds()
	e2e, err := signups(ctx, pool, amqpURL, n)
	if err != nil {
		return res, err
	}
	res.Seconds = e2e.Seconds()
	res.SignupRate, res.JobRate = float64(n)/e2e.Seconds(), float64(res.Jobs)/e2e.Seconds()
	res.RatioToRaw = res.JobRate / res.RawJobRate
	return res, nil
}

// noopArgs is the baseline's trivial job.
type noopArgs struct {
	Seq int `json:"seq"`
}

func (noopArgs) Kind() string { return "jobsd_bench_noop" }

func (noopArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "jobsd_bench"} }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func rawRiver(ctx context.Context, pool *pgxpool.Pool, n int) (time.Duration, error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, above, stop, err := startRiver(ctx, pool, workers, "jobsd_bench", logger(ctx))
	if err != nil {
		return 0, err
	}
	defer stop()
	progressf(ctx, "raw River: %d jobs (%d transactions of 3)", 3*n, n)
	start := time.Now()
	err = fanOut(ctx, n, func(i int) error {
		jobs := make([]river.InsertManyParams, 3)
		for k := range jobs {
			jobs[k] = river.InsertManyParams{Args: noopArgs{Seq: 3*i + k}}
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := client.InsertManyTx(ctx, tx, jobs)
			return err
		})
	})
	if err != nil {
		return 0, fmt.Errorf("raw River insert: %w", err)
	}
	if err := awaitJobs(ctx, pool, noopArgs{}.Kind(), above, 3*n, "raw River", nil); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func signups(ctx context.Context, pool *pgxpool.Pool, amqpURL string, n int) (time.Duration, error) {
	top, err := declare(amqpURL, true) // the consumer declares its queue
	if err != nil {
		return 0, err
	}
	defer top.delete()
	log := logger(ctx)
	cons, err := consumer.New(pool, amqpURL, consumer.Config{Queue: top.name, Exchange: top.name, Logger: log})
	if err != nil {
		return 0, err
	}
	consRun := goRun(ctx, cons.Run)
	defer func() { _ = consRun.stop() }()
	select {
	case <-cons.Ready():
	case err := <-consRun.done:
		consRun.done <- err // for the deferred stop
		return 0, fmt.Errorf("consumer: %w", errOr(err, "stopped before it was ready"))
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	rel, err := relay.New(pool, amqpURL, relay.Config{Exchange: top.name, Retention: relay.RetentionKeep, Logger: log})
	if err != nil {
		return 0, err
	}
	relRun := goRun(ctx, rel.Run)
	defer func() { _ = relRun.stop() }()

	workers := river.NewWorkers()
	jobs.AddWorkers(workers, pool, jobs.Config{})
	client, above, stop, err := startRiver(ctx, pool, workers, river.QueueDefault, log)
	if err != nil {
		return 0, err
	}
	defer stop()
	svc := &signup.Service{Pool: pool, River: client}
	run := newName()
	progressf(ctx, "signups: %d signups -> %d profile jobs + %d events", n, 3*n, n)
	start := time.Now()
	err = fanOut(ctx, n, func(i int) error {
		_, err := svc.Signup(ctx, "bench-"+strconv.Itoa(i)+"@"+run+".example.com", "Bench User "+strconv.Itoa(i))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("signup: %w", err)
	}
	consumed := func() string { return fmt.Sprintf(", %d/%d events consumed", cons.Stats().Processed, n) }
	kind := jobs.CreateProfileArgs{}.Kind()
	if err := awaitJobs(ctx, pool, kind, above, 3*n, "signups", consumed); err != nil {
		return 0, err
	}
	err = waitFor(ctx, time.Millisecond, func() (bool, error) { return cons.Stats().Processed >= uint64(n), nil },
		func() string { return "signups: only" + consumed() })
	if err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// fanOut calls f(0..n-1) from signupWriters goroutines and returns the first error.
func fanOut(ctx context.Context, n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, signupWriters)
	for range signupWriters {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// awaitJobs polls river_job until want jobs of kind above id are completed.
func awaitJobs(ctx context.Context, pool *pgxpool.Pool, kind string, above int64, want int, what string, extra func() string) error {
	var done int
	next := time.Now().Add(time.Second)
	more := func() string {
		if extra == nil {
			return ""
		}
		return extra()
	}
	return waitFor(ctx, 20*time.Millisecond, func() (bool, error) {
		if err := pool.QueryRow(ctx, jobsCompletedSQL, kind, above).Scan(&done); err != nil {
			return false, fmt.Errorf("%s: count completed jobs: %w", what, err)
		}
		if time.Now().After(next) {
			progressf(ctx, "%s: %d/%d jobs completed%s", what, done, want, more())
			next = time.Now().Add(time.Second)
		}
		return done >= want, nil
	}, func() string { return fmt.Sprintf("%s: only %d of %d jobs completed%s", what, done, want, more()) })
}

// startRiver starts client and returns its stop.
// startRiver starts a River client working queue with the bench's River
// settings, and returns it with the highest job id at its start (the jobs to
// wait for are above it) and a function that stops it.
func startRiver(ctx context.Context, pool *pgxpool.Pool, workers *river.Workers, queue string, log *slog.Logger) (*river.Client[pgx.Tx], int64, func(), error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: RiverFetchCooldown,
		Logger:        log,
		Queues:        map[string]river.QueueConfig{queue: {MaxWorkers: RiverWorkers}},
		Workers:       workers,
	})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("river client: %w", err)
	}
	var above int64
	if err := pool.QueryRow(ctx, jobsMaxIDSQL).Scan(&above); err != nil {
		return nil, 0, nil, fmt.Errorf("river jobs: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return nil, 0, nil, fmt.Errorf("start River: %w", err)
	}
	return client, above, func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}, nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
