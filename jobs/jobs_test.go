package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// deadline bounds waits for things that must happen; reaching it means the
// code is broken, not slow.
const deadline = 30 * time.Second

// retryNow retries a failed job at once instead of after River's backoff
// (about a second for the first retry), to keep the tests fast.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

type testBundle struct {
	db     *testdb.DB
	client *river.Client[pgx.Tx]
	events <-chan *river.Event
}

type setupOpts struct {
	faults     jobs.Faults
	jobTimeout time.Duration
}

// setup starts an in-process River client working jobsd's workers on a fresh
// database, subscribed to job events; it is stopped when the test ends.
func setup(t *testing.T, opts setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.New(t)
	workers := river.NewWorkers()
	jobs.AddWorkers(workers, db.Pool, jobs.Config{Faults: opts.faults})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		JobTimeout:        opts.jobTimeout,
		Logger:            slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
		RetryPolicy:       retryNow{},
		TestOnly:          true,
		Workers:           workers,
	})
	require.NoError(t, err)
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	t.Cleanup(cancel)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	})
	return &testBundle{db: db, client: client, events: events}
}

// insertUser inserts a users row (profiles reference it) and returns its id.
func insertUser(t *testing.T, b *testBundle, email string) int64 {
	t.Helper()
	var id int64
	err := b.db.Pool.QueryRow(context.Background(),
		"INSERT INTO users (email) VALUES ($1) RETURNING id", email).Scan(&id)
	require.NoError(t, err)
	return id
}

// waitFinal waits for the events that finish each job (completed, or failed
// for the last time: discarded) and returns the final rows by id.
func waitFinal(t *testing.T, b *testBundle, ids ...int64) map[int64]*rivertype.JobRow {
	t.Helper()
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	final := map[int64]*rivertype.JobRow{}
	timeout := time.After(deadline)
	for len(final) < len(want) {
		select {
		case e := <-b.events:
			if !want[e.Job.ID] {
				continue
			}
			switch e.Job.State {
			case rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
				final[e.Job.ID] = e.Job
			}
		case <-timeout:
			t.Fatalf("jobs %v did not finish; finished: %v", ids, final)
		}
	}
	return final
}

func profiles(t *testing.T, b *testBundle, userID int64) []string {
	t.Helper()
	rows, err := b.db.Pool.Query(context.Background(),
		"SELECT service FROM profiles WHERE user_id = $1 ORDER BY service", userID)
	require.NoError(t, err)
	services, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return services
}

func jobState(t *testing.T, b *testBundle, id int64) *rivertype.JobRow {
	t.Helper()
	job, err := b.client.JobGet(context.Background(), id)
	require.NoError(t, err)
	return job
}

func TestProfileJobsCreateProfiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	userID := insertUser(t, b, "ada@example.com")

	res, err := b.client.InsertMany(ctx, jobs.ProfileJobs(userID))
	require.NoError(t, err)
	require.Len(t, res, 3)
	var ids []int64
	for _, r := range res {
		require.Equal(t, "create_profile", r.Job.Kind)
		ids = append(ids, r.Job.ID)
	}
	for _, job := range waitFinal(t, b, ids...) {
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		require.Equal(t, 1, job.Attempt)
	}
	require.Equal(t, []string{"food", "pay", "ride"}, profiles(t, b, userID))
}

func TestProfileJobsCustomServices(t *testing.T) {
	t.Parallel()
	params := jobs.ProfileJobs(7, "mail")
	require.Len(t, params, 1)
	require.Equal(t, jobs.CreateProfileArgs{UserID: 7, Service: "mail"}, params[0].Args)

	params = jobs.ProfileJobs(7)
	require.Len(t, params, len(jobs.DefaultServices))
	for i, s := range jobs.DefaultServices {
		require.Equal(t, jobs.CreateProfileArgs{UserID: 7, Service: s}, params[i].Args)
	}
}

// TestProfileJobIdempotent: a profile that exists already (a previous run
// created it) is not an error, and working the same job twice leaves one
// profile.
func TestProfileJobIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	userID := insertUser(t, b, "grace@example.com")

	_, err := b.db.Pool.Exec(ctx, "INSERT INTO profiles (user_id, service) VALUES ($1, 'ride')", userID)
	require.NoError(t, err)
	first, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "ride"}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, waitFinal(t, b, first.Job.ID)[first.Job.ID].State)

	// Work the completed job a second time, as after a rescue: River's
	// JobRetry makes it available again.
	retried, err := b.client.JobRetry(ctx, first.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, retried.State)
	again := waitFinal(t, b, first.Job.ID)[first.Job.ID]
	require.Equal(t, rivertype.JobStateCompleted, again.State)
	require.Equal(t, 2, again.Attempt)

	require.Equal(t, []string{"ride"}, profiles(t, b, userID))
}

func TestProfileJobUnique(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	userID := insertUser(t, b, "linus@example.com")

	args := jobs.CreateProfileArgs{UserID: userID, Service: "pay"}
	first, err := b.client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.False(t, first.UniqueSkippedAsDuplicate)
	again, err := b.client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate)
	require.Equal(t, first.Job.ID, again.Job.ID)

	// Still unique once the job has completed.
	waitFinal(t, b, first.Job.ID)
	afterCompletion, err := b.client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.True(t, afterCompletion.UniqueSkippedAsDuplicate)
	require.Equal(t, first.Job.ID, afterCompletion.Job.ID)

	// InsertMany (what a signup uses) honours uniqueness too; another service
	// or user is another job.
	many, err := b.client.InsertMany(ctx, jobs.ProfileJobs(userID, "pay", "ride"))
	require.NoError(t, err)
	require.True(t, many[0].UniqueSkippedAsDuplicate)
	require.Equal(t, first.Job.ID, many[0].Job.ID)
	require.False(t, many[1].UniqueSkippedAsDuplicate)
	otherUserID := insertUser(t, b, "linus2@example.com")
	otherUser, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: otherUserID, Service: "pay"}, nil)
	require.NoError(t, err)
	require.False(t, otherUser.UniqueSkippedAsDuplicate)

	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx,
		"SELECT count(*) FROM river_job WHERE kind = 'create_profile' AND (args->>'user_id')::bigint = $1 AND args->>'service' = 'pay'",
		userID).Scan(&n))
	require.Equal(t, 1, n)
}

// TestProfileJobRetried: a job whose first attempt fails is retried and
// succeeds, creating one profile.
func TestProfileJobRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{faults: jobs.Faults{FailAttempts: 1}})
	userID := insertUser(t, b, "barbara@example.com")

	res, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "food"}, nil)
	require.NoError(t, err)
	final := waitFinal(t, b, res.Job.ID)[res.Job.ID]
	require.Equal(t, rivertype.JobStateCompleted, final.State)

	job := jobState(t, b, res.Job.ID)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	require.Equal(t, 2, job.Attempt)
	require.Len(t, job.Errors, 1)
	require.Equal(t, 1, job.Errors[0].Attempt)
	require.Contains(t, job.Errors[0].Error, "injected fault: service food unavailable")
	require.Equal(t, []string{"food"}, profiles(t, b, userID))
}

// TestProfileJobDiscarded: a job that fails every attempt is discarded after
// MaxAttempts, creates nothing, and can be retried by id.
func TestProfileJobDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{faults: jobs.Faults{FailService: "food"}})
	userID := insertUser(t, b, "edsger@example.com")

	food, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "food"}, &river.InsertOpts{MaxAttempts: 2})
	require.NoError(t, err)
	ride, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "ride"}, &river.InsertOpts{MaxAttempts: 2})
	require.NoError(t, err)
	final := waitFinal(t, b, food.Job.ID, ride.Job.ID)
	require.Equal(t, rivertype.JobStateDiscarded, final[food.Job.ID].State)
	require.Equal(t, rivertype.JobStateCompleted, final[ride.Job.ID].State)

	job := jobState(t, b, food.Job.ID)
	require.Equal(t, rivertype.JobStateDiscarded, job.State)
	require.Equal(t, 2, job.Attempt)
	require.Len(t, job.Errors, 2)
	require.Contains(t, job.Errors[1].Error, "service food unavailable")
	require.NotNil(t, job.FinalizedAt)
	require.Equal(t, []string{"ride"}, profiles(t, b, userID))

	// Retried by id, it runs again (and, the fault persisting, is discarded again).
	retried, err := b.client.JobRetry(ctx, food.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, retried.State)
	require.Equal(t, rivertype.JobStateDiscarded, waitFinal(t, b, food.Job.ID)[food.Job.ID].State)
	require.Equal(t, 3, jobState(t, b, food.Job.ID).Attempt)
}

// TestProfileJobSlowCallTimesOut: an injected delay longer than the job
// timeout is cut by the timeout, which counts as a failed attempt.
func TestProfileJobSlowCallTimesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{faults: jobs.Faults{Delay: time.Hour}, jobTimeout: 100 * time.Millisecond})
	userID := insertUser(t, b, "alan@example.com")

	res, err := b.client.Insert(ctx, jobs.CreateProfileArgs{UserID: userID, Service: "pay"}, &river.InsertOpts{MaxAttempts: 1})
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateDiscarded, waitFinal(t, b, res.Job.ID)[res.Job.ID].State)
	job := jobState(t, b, res.Job.ID)
	require.Len(t, job.Errors, 1)
	require.Contains(t, job.Errors[0].Error, "deadline exceeded")
	require.Empty(t, profiles(t, b, userID))
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		faults  jobs.Faults
		wantErr string
	}{
		{"zero", jobs.Faults{}, ""},
		{"all set", jobs.Faults{FailRate: 1, FailService: "food", FailAttempts: 3, Delay: time.Second}, ""},
		{"negative rate", jobs.Faults{FailRate: -0.1}, "fail rate -0.1 is not between 0 and 1"},
		{"rate above 1", jobs.Faults{FailRate: 1.5}, "fail rate 1.5 is not between 0 and 1"},
		{"negative attempts", jobs.Faults{FailAttempts: -1}, "fail attempts -1 is negative"},
		{"negative delay", jobs.Faults{Delay: -time.Second}, "work delay -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.faults.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestCreateProfileArgs(t *testing.T) {
	t.Parallel()
	args := jobs.CreateProfileArgs{UserID: 1, Service: "ride"}
	require.Equal(t, "create_profile", args.Kind())
	require.True(t, args.InsertOpts().UniqueOpts.ByArgs)
}
