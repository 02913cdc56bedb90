package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/internal/testdb"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://jobsd:s3cret@db.example.com:5432/jobsd", "postgres://jobsd:xxxxx@db.example.com:5432/jobsd"},
		{"postgres://jobsd@127.0.0.1/jobsd?password=s3cret&sslmode=disable", "postgres://jobsd@127.0.0.1/jobsd?password=xxxxx&sslmode=disable"},
		{"postgres://jobsd:p%40ss%3Aw0rd@host/db", "postgres://jobsd:xxxxx@host/db"},
		{"postgres://jobsd@127.0.0.1:5432/jobsd?sslmode=disable", "postgres://jobsd@127.0.0.1:5432/jobsd?sslmode=disable"},
		{"postgres://jobsd:s3cret@host:port:bad/db", "(unparsable URL)"},
		// Keyword/value connection strings, which pgx accepts as well.
		{"host=127.0.0.1 user=jobsd password=s3cret dbname=jobsd", "host=127.0.0.1 user=jobsd password=xxxxx dbname=jobsd"},
		{"host=127.0.0.1 password = 's3cret with \\' quote' dbname=jobsd", "host=127.0.0.1 password = xxxxx dbname=jobsd"},
		{"host=127.0.0.1 PASSWORD=s3cret", "host=127.0.0.1 PASSWORD=xxxxx"},
		{"host=127.0.0.1 dbname=jobsd", "host=127.0.0.1 dbname=jobsd"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, database.Redact(tt.in), tt.in)
		require.NotContains(t, database.Redact(tt.in), "s3cret")
	}
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, url := range []string{
		"postgres://jobsd:s3cret@127.0.0.1:1/jobsd?sslmode=disable",
		"postgres://jobsd@127.0.0.1:1/jobsd?sslmode=disable&password=s3cret",
		"postgres://jobsd:s3cret@127.0.0.1:1/jobsd?sslmode=bogus",
		"host=127.0.0.1 port=1 user=jobsd password=s3cret dbname=jobsd sslmode=disable",
		"host=127.0.0.1 port=1 user=jobsd password='s3cret' dbname=jobsd sslmode=disable",
	} {
		_, err := database.Open(ctx, url)
		require.Error(t, err, url)
		require.NotContains(t, err.Error(), "s3cret")
		require.Contains(t, err.Error(), "xxxxx")

		_, err = database.EnsureExists(ctx, url)
		require.Error(t, err, url)
		require.NotContains(t, err.Error(), "s3cret")
	}
}

func TestEnsureExists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.MissingURL(t)

	_, err := database.Open(ctx, url)
	require.ErrorContains(t, err, "does not exist (run `jobsd migrate`, which creates it)")

	created, err := database.EnsureExists(ctx, url)
	require.NoError(t, err)
	require.True(t, created)
	created, err = database.EnsureExists(ctx, url)
	require.NoError(t, err)
	require.False(t, created)

	pool, err := database.Open(ctx, url)
	require.NoError(t, err)
	pool.Close()
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	err := database.Describe("postgres://u:s3cret@h/db", errors.New("failed to connect to `user=u database=db`: 127.0.0.1:1: dial error: connection refused"))
	require.EqualError(t, err, "cannot reach database postgres://u:xxxxx@h/db: connection refused (is Postgres running? check --database-url / DATABASE_URL)")
}

// TestDescribeServerRefusals: a server's refusal says what was refused, not
// "is Postgres running?", and never shows the password.
func TestDescribeServerRefusals(t *testing.T) {
	t.Parallel()
	url := "postgres://jobsd:s3cret@127.0.0.1:5432/jobsd"
	tests := []struct {
		code, message, want string
	}{
		{"28P01", `password authentication failed for user "jobsd"`, "refused the login: password authentication failed (28P01)"},
		{"28000", `role "jobsd" does not exist`, `refused the login: role "jobsd" does not exist (28000): check the user`},
		{"3D000", `database "jobsd" does not exist`, "does not exist (run `jobsd migrate`, which creates it)"},
		{"53300", "sorry, too many clients already", "refused the connection: sorry, too many clients already (SQLSTATE 53300)"},
	}
	for _, tt := range tests {
		err := database.Describe(url, fmt.Errorf("failed to connect: %w", &pgconn.PgError{Code: tt.code, Message: tt.message}))
		require.ErrorContains(t, err, tt.want)
		require.NotContains(t, err.Error(), "s3cret")
		require.NotContains(t, err.Error(), "is Postgres running")
	}
}
