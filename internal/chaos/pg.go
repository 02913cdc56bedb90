package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGBinDirDefault holds initdb, pg_ctl and postgres.
const PGBinDirDefault = "/usr/lib/postgresql/15/bin"

// Postgres is a Postgres cluster of the harness's own: initdb into a
// temporary directory, a free port, removed by Stop.
type Postgres struct {
	binDir string
	dir    string // data directory (also the socket directory)
	port   int
	runAs  string // non-root user that owns dir and runs the server; "" runs as ourselves
}

// StartPostgres initialises and starts a cluster under parent. Run as root,
// it runs the server as the postgres user (Postgres refuses root).
func StartPostgres(ctx context.Context, binDir, parent string) (*Postgres, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Postgres{binDir: binDir, dir: filepath.Join(parent, "pg"), port: port}
	if os.Geteuid() == 0 {
		p.runAs = "postgres"
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	if p.runAs != "" {
		if err := chownTo(p.runAs, parent, p.dir); err != nil {
			return nil, err
		}
	}
	if out, err := p.run(ctx, "initdb", "-D", p.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"max_connections = 100\nfsync = off\nsynchronous_commit = on\nfull_page_writes = off\n", p.port, p.dir)
	f, err := os.OpenFile(filepath.Join(p.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := p.ctl(ctx, "start"); err != nil {
		return nil, err
	}
	return p, nil
}

// URL is the connection URL of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Restart restarts the server with pg_ctl's shutdown mode "fast" (clients
// disconnected, clean shutdown) or "immediate" (no shutdown checkpoint: crash
// recovery at start).
func (p *Postgres) Restart(ctx context.Context, mode string) error {
	return p.ctl(ctx, "restart", "-m", mode)
}

// Stop stops the server (fast) and removes its directory.
func (p *Postgres) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.ctl(ctx, "stop", "-m", "fast")
	if err != nil {
		err = p.ctl(ctx, "stop", "-m", "immediate")
	}
	if rmErr := os.RemoveAll(p.dir); err == nil {
		err = rmErr
	}
	return err
}

// Connect opens one connection to database db.
func (p *Postgres) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, p.URL(db))
}

func (p *Postgres) ctl(ctx context.Context, args ...string) error {
	// -l on start and restart: a server writing to our pipe would keep
	// CombinedOutput waiting for it.
	args = append([]string{args[0], "-D", p.dir, "-w", "-t", "60", "-l", filepath.Join(p.dir, "server.log")}, args[1:]...)
	if out, err := p.run(ctx, "pg_ctl", args...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", args[0], err, out)
	}
	return nil
}

// run runs one of the Postgres binaries, as runAs when set.
func (p *Postgres) run(ctx context.Context, bin string, args ...string) (string, error) {
	path := filepath.Join(p.binDir, bin)
	var cmd *exec.Cmd
	if p.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C reaches the harness only
	// On cancel, kill the whole group (the tools are scripts that run
	// others) and stop waiting for output a lingering child still holds.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// chownTo gives dirs to the named user, and lets it traverse parent.
func chownTo(name, parent string, dirs ...string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %s (needed to run a server as non-root): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(parent, 0o755); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.Chown(d, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
