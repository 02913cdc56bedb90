package consumer

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// dbError is an error of the consumer's own statements (begin, the inbox
// insert): the messages are never the cause, so it is a database error
// whatever its SQLSTATE (a missing table waits for `jobsd migrate` too).
type dbError struct {
	op  string
	err error
}

func (e *dbError) Error() string { return e.op + ": " + e.err.Error() }
func (e *dbError) Unwrap() error { return e.err }

// isDatabaseError reports whether err says that the database, not the
// message, failed: it could not be reached or lost the connection, timed
// out, ran out of resources, was shut down or is read-only (a failover), or
// the transaction lost a serialization or deadlock conflict. Such errors hold
// the messages and are retried until the database is back; they never count
// as handler attempts. Errors are classified by type and SQLSTATE, never by
// text. A network error or a timeout (TxTimeout) returned by a Handler's own
// calls counts too: the dependency is unreachable, not the message bad, and
// holding loses nothing.
func isDatabaseError(err error) bool {
	var (
		own        *dbError
		connectErr *pgconn.ConnectError
		netErr     net.Error
		pgErr      *pgconn.PgError
	)
	switch {
	case errors.As(err, &own), errors.As(err, &connectErr), errors.As(err, &netErr),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pgErr) && len(pgErr.Code) == 5:
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"40", // transaction rollback: serialization failure, deadlock
			"53", // insufficient resources: disk full, out of memory, too many connections
			"57", // operator intervention: shutdown, cannot connect now, statement timeout
			"58": // system error: I/O error
			return true
		}
		return pgErr.Code == "55P03" || // lock_not_available (lock_timeout)
			pgErr.Code == "25006" // read_only_sql_transaction: a standby during failover
	}
	return false
}
