package signup_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/outbox"
	"github.com/jobsd/jobsd/signup"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	db      *testdb.DB
	river   *river.Client[pgx.Tx]
	service *signup.Service
}

// setup gives each test its own database and an insert-only River client.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := testdb.New(t)
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{})
	require.NoError(t, err)
	return &testBundle{db: db, river: client, service: &signup.Service{Pool: db.Pool, River: client}}
}

// counts is how many users, river jobs and outbox events the database holds.
type counts struct{ users, jobs, events int }

func countRows(t *testing.T, db *testdb.DB) counts {
	t.Helper()
	var c counts
	err := db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM users), (SELECT count(*) FROM river_job), (SELECT count(*) FROM outbox_event)`,
	).Scan(&c.users, &c.jobs, &c.events)
	require.NoError(t, err)
	return c
}

func TestSignupCommitsUserJobsAndEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	res, err := b.service.Signup(ctx, "  Ada@Example.COM ", " Ada Lovelace ")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", res.User.Email, "email is trimmed and lower-cased")
	require.Equal(t, "Ada Lovelace", res.User.Name)
	require.Len(t, res.JobIDs, 3)
	require.Positive(t, res.EventID)
	require.Equal(t, counts{users: 1, jobs: 3, events: 1}, countRows(t, b.db))

	// The jobs: one create_profile per default service, for this user.
	rows, err := b.db.Pool.Query(ctx, `SELECT id, kind, (args->>'user_id')::bigint, args->>'service', state
		FROM river_job ORDER BY id`)
	require.NoError(t, err)
	type jobRow struct {
		ID      int64
		Kind    string
		UserID  int64
		Service string
		State   string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobRow])
	require.NoError(t, err)
	var services []string
	for i, j := range got {
		require.Equal(t, res.JobIDs[i], j.ID)
		require.Equal(t, "create_profile", j.Kind)
		require.Equal(t, res.User.ID, j.UserID)
		require.Equal(t, "available", j.State)
		services = append(services, j.Service)
	}
	require.ElementsMatch(t, []string{"ride", "pay", "food"}, services)

	// The event: topic user.signed_up, keyed by the user id, the user as payload.
	var (
		id             int64
		topic, key     string
		state          string
		payloadUserID  int64
		payloadEmail   string
		payloadName    string
		payloadCreated string
	)
	err = b.db.Pool.QueryRow(ctx, `SELECT id, topic, key, state, (payload->>'id')::bigint, payload->>'email',
		payload->>'name', payload->>'created_at' FROM outbox_event`).
		Scan(&id, &topic, &key, &state, &payloadUserID, &payloadEmail, &payloadName, &payloadCreated)
	require.NoError(t, err)
	require.Equal(t, res.EventID, id)
	require.Equal(t, signup.Topic, topic)
	require.Equal(t, "user.signed_up", topic)
	require.Equal(t, strconv.FormatInt(res.User.ID, 10), key)
	require.Equal(t, "pending", state)
	require.Equal(t, res.User.ID, payloadUserID)
	require.Equal(t, "ada@example.com", payloadEmail)
	require.Equal(t, "Ada Lovelace", payloadName)
	require.NotEmpty(t, payloadCreated)
}

func TestSignupRolledBackLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	errLater := errors.New("a later step of the application failed")
	err := pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		user, err := signup.InsertUser(ctx, tx, "grace@example.com", "Grace")
		if err != nil {
			return err
		}
		inserted, err := b.river.InsertManyTx(ctx, tx, jobs.ProfileJobs(user.ID))
		if err != nil {
			return err
		}
		if len(inserted) != 3 {
			return errors.New("expected 3 jobs inserted")
		}
		if err := outbox.Write(ctx, tx, outbox.Event{
			Topic: signup.Topic, Key: strconv.FormatInt(user.ID, 10), Payload: user,
		}); err != nil {
			return err
		}
		// All three are visible inside the transaction...
		var c counts
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM river_job),
			(SELECT count(*) FROM outbox_event)`).Scan(&c.users, &c.jobs, &c.events); err != nil {
			return err
		}
		if c != (counts{users: 1, jobs: 3, events: 1}) {
			return errors.New("rows not visible in the transaction")
		}
		return errLater
	})
	require.ErrorIs(t, err, errLater)
	// ...and none of them outside after the rollback.
	require.Equal(t, counts{}, countRows(t, b.db))
}

func TestSignupDuplicateEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	first, err := b.service.Signup(ctx, "linus@example.com", "Linus")
	require.NoError(t, err)

	for _, email := range []string{"linus@example.com", " LINUS@example.com"} {
		res, err := b.service.Signup(ctx, email, "Another Linus")
		require.ErrorIs(t, err, signup.ErrDuplicateEmail, "email %q", email)
		require.Nil(t, res)
	}

	require.Equal(t, counts{users: 1, jobs: 3, events: 1}, countRows(t, b.db))
	var userID int64
	var name string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT id, name FROM users").Scan(&userID, &name))
	require.Equal(t, first.User.ID, userID)
	require.Equal(t, "Linus", name)
	var jobsOfFirst int
	require.NoError(t, b.db.Pool.QueryRow(ctx,
		"SELECT count(*) FROM river_job WHERE (args->>'user_id')::bigint = $1", first.User.ID).Scan(&jobsOfFirst))
	require.Equal(t, 3, jobsOfFirst)
}

func TestSignupInvalidInput(t *testing.T) {
	t.Parallel()
	b := setup(t)

	tests := []struct {
		name, email, userName string
	}{
		{"empty email", "", "Ada"},
		{"blank email", "   ", "Ada"},
		{"no at sign", "not-an-email", "Ada"},
		{"display name form", "Ada <ada@example.com>", "Ada"},
		{"two addresses", "a@example.com, b@example.com", "Ada"},
		{"domain missing", "ada@", "Ada"},
		{"too long", strings.Repeat("a", 250) + "@example.com", "Ada"},
		{"name too long", "ada@example.com", strings.Repeat("n", 201)},
		{"NUL in name", "ada@example.com", "Ada\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := signup.Normalize(tt.email, tt.userName)
			require.ErrorIs(t, err, signup.ErrInvalidInput)

			res, err := b.service.Signup(context.Background(), tt.email, tt.userName)
			require.ErrorIs(t, err, signup.ErrInvalidInput)
			require.Nil(t, res)
		})
	}
	t.Cleanup(func() { require.Equal(t, counts{}, countRows(t, b.db)) })
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	email, name, err := signup.Normalize("  Ada.Lovelace+test@Example.com\t", "  Ada  ")
	require.NoError(t, err)
	require.Equal(t, "ada.lovelace+test@example.com", email)
	require.Equal(t, "Ada", name)
}
