// Package signup is the demo application's write path: one Postgres
// transaction inserts the user, one create_profile job per downstream service
// and a user.signed_up outbox event. Either all three are committed or none.
//
// It may import pgx, River, OpenTelemetry's API, and jobsd's outbox, jobs and
// sql packages.
package signup

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobsd/jobsd/jobs"
	"github.com/jobsd/jobsd/outbox"
	jsql "github.com/jobsd/jobsd/sql"
)

// tracerName names the tracer of the signup span (the instrumentation scope).
const tracerName = "github.com/jobsd/jobsd/signup"

// Topic is the outbox topic of the event written for each signup.
const Topic = "user.signed_up"

var (
	// ErrDuplicateEmail is returned when a user with that email exists already.
	ErrDuplicateEmail = errors.New("a user with this email already exists")
	// ErrInvalidInput is wrapped by errors about the email or name.
	ErrInvalidInput = errors.New("invalid signup")
)

// User is a row of the users table.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Result is what one signup wrote.
type Result struct {
	User    User    `json:"user"`
	JobIDs  []int64 `json:"job_ids"`
	EventID int64   `json:"event_id"`
}

var insertUserSQL = jsql.Statement("user_insert")

// InsertUser inserts a user in tx. The email is trimmed and lower-cased.
func InsertUser(ctx context.Context, tx pgx.Tx, email, name string) (User, error) {
	email, name, err := Normalize(email, name)
	if err != nil {
		return User{}, err
	}
	var u User
	err = tx.QueryRow(ctx, insertUserSQL, email, name).Scan(&u.ID, &u.Email, &u.Name, &u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, fmt.Errorf("%w: %s", ErrDuplicateEmail, email)
	}
	return u, err
}

// Normalize validates and canonicalises a signup's email and name.
func Normalize(email, name string) (string, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	name = strings.TrimSpace(name)
	addr, err := mail.ParseAddress(email)
	switch {
	case email == "":
		return "", "", fmt.Errorf("%w: email is empty", ErrInvalidInput)
	case len(email) > 254 || err != nil || addr.Address != email:
		return "", "", fmt.Errorf("%w: %q is not an email address", ErrInvalidInput, email)
	case len(name) > 200:
		return "", "", fmt.Errorf("%w: name is longer than 200 bytes", ErrInvalidInput)
	case strings.ContainsRune(name, 0):
		return "", "", fmt.Errorf("%w: name contains a NUL byte", ErrInvalidInput)
	}
	return email, name, nil
}

// Service signs users up.
type Service struct {
	Pool  *pgxpool.Pool
	River *river.Client[pgx.Tx] // an insert-only client is enough
	// Services to create a profile in; nil means jobs.DefaultServices.
	Services []string
	// TracerProvider gets a "signup" span around the transaction: River's
	// inserts and the outbox event (its traceparent header) belong to it.
	// Nil means OpenTelemetry's global provider.
	TracerProvider trace.TracerProvider
}

// Signup writes the user, the profile jobs and the event in one transaction.
func (s *Service) Signup(ctx context.Context, email, name string) (_ *Result, err error) {
	tp := s.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	ctx, span := tp.Tracer(tracerName).Start(ctx, "signup")
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	var res Result
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		user, err := InsertUser(ctx, tx, email, name)
		if err != nil {
			return err
		}
		res.User = user
		inserted, err := s.River.InsertManyTx(ctx, tx, jobs.ProfileJobs(user.ID, s.Services...))
		if err != nil {
			return fmt.Errorf("insert profile jobs: %w", err)
		}
		for _, r := range inserted {
			res.JobIDs = append(res.JobIDs, r.Job.ID)
		}
		ids, err := outbox.WriteReturningIDs(ctx, tx, outbox.Event{
			Topic:   Topic,
			Key:     strconv.FormatInt(user.ID, 10),
			Payload: user,
		})
		if err != nil {
			return err
		}
		res.EventID = ids[0]
		span.SetAttributes(attribute.Int64("jobsd.user.id", user.ID), attribute.Int64("jobsd.outbox.event_id", res.EventID))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &res, nil
}
