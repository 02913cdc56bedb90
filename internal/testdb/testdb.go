// Package testdb gives each test its own migrated Postgres database, cloned
// from a template that is migrated once per schema version, so that tests run
// in parallel and commit, LISTEN and NOTIFY freely.
//
// Only _test.go files may import it. The server is TEST_DATABASE_URL (default:
// the local server as user postgres). When it is unreachable the test is
// skipped, or fails when CI is set.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/jobsd/jobsd/internal/migrate"
	jsql "github.com/jobsd/jobsd/sql"
)

// ServerURL is the server tests create their databases on.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// DB is one test's database.
type DB struct {
	URL  string // connection URL of the test's own database
	Pool *pgxpool.Pool
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// ErrUnreachable is wrapped by NewMain's error when the Postgres server cannot
// be reached.
var ErrUnreachable = errors.New("testdb: Postgres unreachable")

// New creates a migrated database for t, dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	name := createDatabase(t, true)
	return connect(t, name)
}

// NewEmpty creates an existing but unmigrated database for t, dropped when t
// ends: for tests of `jobsd migrate`.
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	name := createDatabase(t, false)
	return connect(t, name)
}

// MissingURL returns the URL of a database that does not exist yet, with a
// fresh name; a database of that name is dropped when t ends, in case the test
// created it.
func MissingURL(t testing.TB) string {
	t.Helper()
	connectAdmin(t).Close(context.Background()) // skip or fail like New when unreachable
	name := "jobsd_test_" + randomHex(6)
	t.Cleanup(func() { dropDatabase(t, name) })
	return withDatabase(t, ServerURL(), name)
}

// NewMain creates a migrated database outside any test, for a package's
// TestMain (examples take no *testing.T). Call cleanup when the tests are done:
// it closes the pool and drops the database. When the server is unreachable
// the error wraps ErrUnreachable; see ExitUnreachable.
func NewMain() (db *DB, cleanup func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return nil, nil, fmt.Errorf("%w at TEST_DATABASE_URL: %v", ErrUnreachable, err)
	}
	defer admin.Close(ctx)
	name, err := createFromTemplate(ctx, admin)
	if err != nil {
		return nil, nil, err
	}
	url := withDatabaseURL(ServerURL(), name)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		dropDatabase(nil, name)
		return nil, nil, fmt.Errorf("testdb: connect: %w", err)
	}
	return &DB{URL: url, Pool: pool}, func() { pool.Close(); dropDatabase(nil, name) }, nil
}

// ExitUnreachable is for a TestMain whose NewMain failed: it prints err and
// returns the exit code, 0 (the package is skipped) when the server is
// unreachable and CI is not set, 1 otherwise.
func ExitUnreachable(err error) int {
	if errors.Is(err, ErrUnreachable) && os.Getenv("CI") == "" {
		fmt.Fprintf(os.Stderr, "%v; skipping the package (set CI=1 to fail instead)\n", err)
		return 0
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// createDatabase creates a database for t, from the migrated template or
// empty, and drops it when t ends.
func createDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	ctx := context.Background()
	admin := connectAdmin(t)
	defer admin.Close(ctx)
	var name string
	var err error
	if migrated {
		name, err = createFromTemplate(ctx, admin)
	} else {
		name = "jobsd_test_" + randomHex(6)
		_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	}
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, name) })
	return name
}

func createFromTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		return "", fmt.Errorf("build template: %w", templateErr)
	}
	name := "jobsd_test_" + randomHex(6)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName)); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

func connect(t testing.TB, name string) *DB {
	t.Helper()
	url := withDatabase(t, ServerURL(), name)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("testdb: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return &DB{URL: url, Pool: pool}
}

func connectAdmin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testdb: Postgres unreachable at TEST_DATABASE_URL (CI is set, so this fails): %v", err)
		}
		t.Skipf("testdb: Postgres unreachable, skipping (set CI=1 to fail instead): %v", err)
	}
	return conn
}

// ensureTemplate builds, once per migration content, a migrated template
// database. A cross-process advisory lock lets parallel `go test` packages share it.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name := "jobsd_tpl_" + schemaHash()
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext('jobsd_testdb_template'))"); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(hashtext('jobsd_testdb_template'))") //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	build := name + "_build"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+build+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+build); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabaseURL(ServerURL(), build))
	if err != nil {
		return "", err
	}
	_, err = migrate.Up(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", build, name))
	return name, err
}

// schemaHash changes whenever River's or jobsd's migrations change.
func schemaHash() string {
	h := sha256.New()
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err == nil {
		for _, m := range migrator.AllVersions() {
			fmt.Fprintf(h, "river %d %s\n", m.Version, m.SQLUp)
		}
	}
	for _, m := range jsql.Migrations() {
		fmt.Fprintf(h, "jobsd %d %s\n", m.Version, m.SQL)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// dropDatabase drops name, logging a failure to t (or stderr when t is nil).
func dropDatabase(t testing.TB, name string) {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	if t != nil {
		logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		logf("testdb: drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		logf("testdb: drop %s: %v", name, err)
	}
}

func withDatabase(t testing.TB, serverURL, name string) string {
	t.Helper()
	u := withDatabaseURL(serverURL, name)
	if u == "" {
		t.Fatalf("testdb: TEST_DATABASE_URL is not a postgres:// URL")
	}
	return u
}

// withDatabaseURL replaces the database name of a postgres:// URL.
func withDatabaseURL(serverURL, name string) string {
	rest, query, _ := strings.Cut(serverURL, "?")
	scheme, hostPart, ok := strings.Cut(rest, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(hostPart, "/")
	u := scheme + "://" + host + "/" + name
	if query != "" {
		u += "?" + query
	}
	return u
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
