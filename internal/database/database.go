// Package database opens jobsd's Postgres pool and turns connection failures
// into errors an operator can act on. It never prints a password: every URL it
// shows goes through Redact.
//
// It may import pgx and the standard library only.
package database

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database jobsd uses when neither --database-url nor
// DATABASE_URL is set: a local server with trust authentication.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/jobsd?sslmode=disable"

// dsnPassword matches the password of a keyword/value connection string.
var dsnPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// Redact returns rawURL with its password replaced by "xxxxx". A URL that does
// not parse is returned as "(unparsable URL)" because it may hold a password.
//
// A string without a scheme is a keyword/value connection string
// ("host=... password=..."), which pgx accepts too: its password value is
// replaced, quoted or not.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.Scheme == "" {
		return dsnPassword.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open parses databaseURL, connects a pool and pings it, so that a wrong URL
// or a server that is down fails here with one clear error.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL %s (expected postgres://user@host:port/dbname)", Redact(databaseURL))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, Describe(databaseURL, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, Describe(databaseURL, err)
	}
	return pool, nil
}

// Describe wraps a connection error with the redacted URL and what failed:
// the server's refusal (authentication, unknown role or database, too many
// connections, ...) or, when no server answered, the network error.
func Describe(databaseURL string, err error) error {
	url := Redact(databaseURL)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server's message names the user or the database, never the password.
		switch pgErr.Code {
		case "3D000": // invalid_catalog_name
			return fmt.Errorf("database %s does not exist (run `jobsd migrate`, which creates it)", url)
		case "28P01": // invalid_password
			return fmt.Errorf("database %s refused the login: password authentication failed (28P01): check the user and password in --database-url / DATABASE_URL", url)
		case "28000": // invalid_authorization_specification: unknown role, no pg_hba.conf entry
			return fmt.Errorf("database %s refused the login: %s (28000): check the user in --database-url / DATABASE_URL", url, pgErr.Message)
		}
		return fmt.Errorf("database %s refused the connection: %s (SQLSTATE %s)", url, pgErr.Message, pgErr.Code)
	}
	msg := err.Error()
	// pgconn errors embed the host and user, never the password; keep the last
	// cause, which says what happened (connection refused, timeout, ...).
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return fmt.Errorf("cannot reach database %s: %s (is Postgres running? check --database-url / DATABASE_URL)", url, msg)
}

// EnsureExists creates the database named in databaseURL when it does not
// exist yet, connecting to the server's "postgres" database to do so. It
// reports whether it created the database.
func EnsureExists(ctx context.Context, databaseURL string) (bool, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return false, fmt.Errorf("invalid database URL %s (expected postgres://user@host:port/dbname)", Redact(databaseURL))
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return false, nil
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err == nil {
		return false, conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return false, Describe(databaseURL, err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return false, Describe(databaseURL, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// Created concurrently by another process: 42P04 when its CREATE had
	// committed, 23505 (on pg_database's name index) when both ran at once.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
	return true, nil
}
