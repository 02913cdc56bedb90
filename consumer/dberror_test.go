package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestIsDatabaseError(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("count analytics: %w", &pgconn.PgError{Code: code}) }
	for _, err := range []error{
		&dbError{op: "record in consumer_inbox", err: &pgconn.PgError{Code: "42P01"}}, // our own statement
		pg("08006"), pg("40001"), pg("40P01"), pg("53300"), pg("57P01"), pg("57014"), pg("58030"),
		pg("55P03"), pg("25006"),
		fmt.Errorf("handler: %w", io.ErrUnexpectedEOF),
		&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")},
		fmt.Errorf("commit: %w", context.DeadlineExceeded),
	} {
		require.True(t, isDatabaseError(err), "%v", err)
	}
	for _, err := range []error{
		errors.New("injected: downstream said no"),
		pg("23505"), // unique violation in the handler: the message's fault
		pg("22P02"), // data exception: permanent, see isPermanent
		pg("42601"), // syntax error in the handler's SQL
		Permanent(errors.New("never")),
	} {
		require.False(t, isDatabaseError(err), "%v", err)
	}
}
