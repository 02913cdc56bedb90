package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestGlobalFlagsAfterCommand: the global flags work after the command too,
// and there they win over the same flag before the command and over the
// environment.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	env := opsEnv("DATABASE_URL=" + downURL) // wrong unless the flag wins
	for _, args := range [][]string{
		{"stats", "--database-url", db.URL},
		{"stats", "--json", "--database-url", db.URL},
		{"jobs", "list", "--json", "--database-url", db.URL},
		{"outbox", "stats", "--database-url=" + db.URL, "--json"},
		{"--database-url", downURL, "stats", "--database-url", db.URL},
		{"--database-url", db.URL, "stats"},
		{"stats", "--database-url", db.URL, "--log-format", "json", "--log-level", "debug", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/"},
	} {
		res := testbin.Run(t, env, args...)
		require.Equal(t, 0, res.Code, "%v: %s", args, res.Stderr)
		require.NotEmpty(t, res.Stdout, "%v", args)
	}

	// The flag after the command is the one used: here the unreachable one.
	res := testbin.Run(t, opsEnv(), "--database-url", db.URL, "stats", "--database-url", downURL)
	requireOneLineError(t, res, 1, "cannot reach database postgres://jobsd:xxxxx@127.0.0.1:1/jobsd")
	require.NotContains(t, res.Stderr, secret)

	// Their values are checked in either position.
	requireOneLineError(t, testbin.Run(t, opsEnv(), "jobs", "list", "--log-format", "xml"), 2, `invalid --log-format "xml"`)
	requireOneLineError(t, testbin.Run(t, opsEnv(), "stats", "--log-level", "loud"), 2, `invalid --log-level "loud"`)
}

// TestGlobalFlagsLogFormatAfterCommand: --log-format after the command sets
// the logger.
func TestGlobalFlagsLogFormatAfterCommand(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res := testbin.Run(t, opsEnv(), "serve", "--no-relay", "--http-addr", "-", "--shutdown-timeout", "1s",
		"--database-url", db.URL, "--workers", "0", "--log-format", "json")
	requireOneLineError(t, res, 2, "--workers and --max-attempts must be at least 1")

	p := testbin.Start(t, opsEnv(), "serve", "--no-relay", "--http-addr", "-", "--database-url", db.URL, "--log-format", "json")
	waitUntil(t, deadline, "serve to log that workers started", func() bool {
		return strings.Contains(p.Output(), `"msg":"workers started"`)
	})
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline))
}

var versionLine = regexp.MustCompile(`^jobsd (\(devel\)|v\S+) commit (unknown|[0-9a-f]{12}(\+dirty)?) go\S+ \w+/\w+\n$`)

func TestVersion(t *testing.T) {
	t.Parallel()
	flag := testbin.Run(t, opsEnv(), "--version")
	require.Equal(t, 0, flag.Code, flag.Stderr)
	require.Empty(t, flag.Stderr)
	require.Regexp(t, versionLine, flag.Stdout)

	cmd := testbin.Run(t, opsEnv(), "version")
	require.Equal(t, 0, cmd.Code, cmd.Stderr)
	require.Equal(t, flag.Stdout, cmd.Stdout)

	res := testbin.Run(t, opsEnv(), "version", "--json")
	require.Equal(t, 0, res.Code, res.Stderr)
	var v struct {
		Version  string `json:"version"`
		Commit   string `json:"commit"`
		Modified bool   `json:"modified"`
		Go       string `json:"go"`
		Platform string `json:"platform"`
	}
	decodeOne(t, res.Stdout, &v)
	require.NotEmpty(t, v.Version)
	require.True(t, strings.HasPrefix(v.Go, "go"), v.Go)
	require.Contains(t, flag.Stdout, " "+v.Go+" "+v.Platform+"\n")
}

// TestHelpCommand: `jobsd help X [Y]` is `jobsd X [Y] --help`.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	for _, path := range [][]string{{}, {"retry"}, {"jobs"}, {"jobs", "list"}, {"outbox", "replay"}, {"serve"}} {
		help := testbin.Run(t, opsEnv(), append([]string{"help"}, path...)...)
		require.Equal(t, 0, help.Code, "help %v: %s", path, help.Stderr)
		require.Empty(t, help.Stderr)
		flag := testbin.Run(t, opsEnv(), append(path, "--help")...)
		require.Equal(t, 0, flag.Code, "%v --help: %s", path, flag.Stderr)
		require.Equal(t, flag.Stdout, help.Stdout, "help %v", path)
	}
	res := testbin.Run(t, opsEnv(), "help", "retry", "--help")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Contains(t, res.Stdout, "jobsd retry - ")
	require.Contains(t, res.Stdout, "--id value")

	requireOneLineError(t, testbin.Run(t, opsEnv(), "help", "frobnicate"), 2, `unknown command "frobnicate"`)
	requireOneLineError(t, testbin.Run(t, opsEnv(), "help", "jobs", "frobnicate"), 2, `unknown command "jobs frobnicate"`)
}

// commandPaths lists every command and subcommand, e.g. ["jobs", "list"].
func commandPaths(prefix []string, cmds []*cli.Command) [][]string {
	var paths [][]string
	for _, cmd := range cmds {
		path := append(append([]string{}, prefix...), cmd.Name)
		paths = append(paths, path)
		paths = append(paths, commandPaths(path, cmd.Subcommands)...)
	}
	return paths
}

// TestHelpShowsOneDefault: no flag's help line shows two defaults, such as
// "(default River's 1h) (default: 0s)", and every command's help ends with
// the global options.
func TestHelpShowsOneDefault(t *testing.T) {
	t.Parallel()
	paths := append([][]string{{}}, commandPaths(nil, newApp(nil, nil).Commands)...)
	require.Greater(t, len(paths), 15)
	for _, path := range paths {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(append([]string{"jobsd"}, path...), "--help"), &stdout, &stderr)
		require.Equal(t, 0, code, "%v --help: %s", path, stderr.String())
		for _, line := range strings.Split(stdout.String(), "\n") {
			require.LessOrEqual(t, strings.Count(line, "(default"), 1, "%v --help: %q", path, line)
		}
		require.Contains(t, stdout.String(), "GLOBAL OPTIONS:", "%v --help", path)
		if len(path) > 0 && path[0] != "help" { // jobsd help --help is jobsd --help
			// The hidden copies of the global flags stay hidden.
			require.NotContains(t, stdout.String(), "--database-url value", "%v --help", path)
		}
	}
}

// amqpURLWith returns the test broker's URL with its password or its
// virtual host replaced.
func amqpURLWith(t *testing.T, password, vhost string) string {
	t.Helper()
	u, err := url.Parse(testbroker.URL())
	require.NoError(t, err)
	if password != "" {
		u.User = url.UserPassword(u.User.Username(), password)
	}
	if vhost != "" {
		u.Path = "/" + vhost
	}
	return u.String()
}

// TestServeBrokerRefuses: credentials or a virtual host that RabbitMQ refuses
// do not get better by retrying: serve (consume, demo) exit 1 at once with one
// line that says so, without the password.
func TestServeBrokerRefuses(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	password := randomSecret(t)
	for _, tc := range []struct {
		url, want string
	}{
		{amqpURLWith(t, password, ""), "RabbitMQ refused the credentials for amqp://"},
		{amqpURLWith(t, "", "jobsd-no-such-vhost"), `RabbitMQ refused access to virtual host "jobsd-no-such-vhost"`},
	} {
		res := testbin.Run(t, opsEnv("DATABASE_URL="+db.URL), "serve", "--http-addr", "-", "--amqp-url", tc.url)
		requireOneLineError(t, res, 1, tc.want)
		require.Contains(t, res.Stderr, "check --amqp-url")
		require.NotContains(t, res.Stderr, password)
	}
	// consume says the same instead of "is it running?".
	res := testbin.Run(t, opsEnv("DATABASE_URL="+db.URL), "consume", "--queue", "jobsd.test.refused",
		"--amqp-url", amqpURLWith(t, password, ""))
	requireOneLineError(t, res, 1, "RabbitMQ refused the credentials for amqp://")
	require.NotContains(t, res.Stderr, password)

	res = testbin.Run(t, opsEnv("DATABASE_URL="+db.URL), "demo", "--http-addr", "-", "--amqp-url", amqpURLWith(t, password, ""))
	requireOneLineError(t, res, 1, "RabbitMQ refused the credentials for amqp://")
	require.NotContains(t, res.Stderr, password)

	// Without the relay, serve does not need the broker.
	p := testbin.Start(t, opsEnv("DATABASE_URL="+db.URL), "serve", "--no-relay", "--http-addr", "-",
		"--amqp-url", amqpURLWith(t, password, ""))
	waitUntil(t, deadline, "serve --no-relay to start", func() bool { return strings.Contains(p.Output(), "workers started") })
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline))
}

// TestServeBrokerDown: a broker that is down at start is an outage the outbox
// absorbs: serve warns, starts, answers /healthz and stops cleanly.
func TestServeBrokerDown(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	p, base := startServe(t, opsEnv("DATABASE_URL="+db.URL), "--amqp-url", "amqp://guest:"+secret+"@127.0.0.1:1/")
	code, _ := get(t, base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline))
	require.Contains(t, p.Output(), "RabbitMQ is unreachable; serving anyway")
	require.NotContains(t, p.Output(), secret)
}

// TestDatabaseRefusesLogin: a role the server does not know is named as such,
// not as a server that may be down.
func TestDatabaseRefusesLogin(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testdb.ServerURL())
	require.NoError(t, err)
	u.User = url.UserPassword("jobsd_no_such_role", secret)
	for _, args := range [][]string{{"stats"}, {"serve", "--http-addr", "-"}, {"migrate"}} {
		res := testbin.Run(t, opsEnv("DATABASE_URL="+u.String()), args...)
		requireOneLineError(t, res, 1, `refused the login: role "jobsd_no_such_role" does not exist`)
		require.NotContains(t, res.Stderr, "is Postgres running")
		require.NotContains(t, res.Stderr, secret)
	}
}

// writeSecret writes content to a file of its own and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// TestSecretFiles: DATABASE_URL_FILE, AMQP_URL_FILE and JOBSD_UI_PASSWORD_FILE
// name files holding the secret (trailing newline ignored); the plain
// variable and the flag win over them.
func TestSecretFiles(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	dbFile := writeSecret(t, db.URL+"\n")

	out := testbin.Run(t, opsEnv("DATABASE_URL_FILE="+dbFile), "stats", "--json")
	require.Equal(t, 0, out.Code, out.Stderr)
	res := testbin.Run(t, opsEnv("DATABASE_URL_FILE="+dbFile, "DATABASE_URL="+downURL), "stats")
	requireOneLineError(t, res, 1, "cannot reach database")
	res = testbin.Run(t, opsEnv("DATABASE_URL_FILE="+writeSecret(t, downURL+"\n")), "stats", "--database-url", db.URL)
	require.Equal(t, 0, res.Code, res.Stderr)

	missing := filepath.Join(t.TempDir(), "missing")
	res = testbin.Run(t, opsEnv("DATABASE_URL_FILE="+missing), "stats")
	requireOneLineError(t, res, 2, "DATABASE_URL_FILE: cannot read "+missing+": no such file or directory")
	res = testbin.Run(t, opsEnv("DATABASE_URL_FILE="+writeSecret(t, "\n")), "stats")
	requireOneLineError(t, res, 2, "is empty")

	// AMQP_URL_FILE: its (wrong) password reaches the broker, not stderr.
	password := randomSecret(t)
	res = testbin.Run(t, opsEnv("DATABASE_URL_FILE="+dbFile, "AMQP_URL_FILE="+writeSecret(t, amqpURLWith(t, password, "")+"\r\n")),
		"serve", "--http-addr", "-")
	requireOneLineError(t, res, 1, "RabbitMQ refused the credentials")
	require.NotContains(t, res.Stderr, password)

	// JOBSD_UI_PASSWORD_FILE: the password of River UI and /metrics.
	p, base := startServe(t, opsEnv("DATABASE_URL_FILE="+dbFile, "JOBSD_UI_USER=ops",
		"JOBSD_UI_PASSWORD_FILE="+writeSecret(t, password+"\n")), "--no-relay")
	code, _ := get(t, base+"/metrics", "ops", password)
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, base+"/metrics", "ops", password+"\n")
	require.Equal(t, http.StatusUnauthorized, code)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline))
	require.NotContains(t, p.Output(), password)
}

// TestBuildVersionString: the commit is shortened and marked +dirty when the
// working tree had changes (test binaries here may be built without VCS
// stamping, hence this unit test).
func TestBuildVersionString(t *testing.T) {
	t.Parallel()
	v := buildVersion{Version: "v1.2.3", Commit: "0123456789abcdef0123", Modified: true, Go: "go1.25.0", Platform: "linux/amd64"}
	require.Equal(t, "jobsd v1.2.3 commit 0123456789ab+dirty go1.25.0 linux/amd64", v.String())
	require.Regexp(t, versionLine, v.String()+"\n")
	v.Modified = false
	require.Equal(t, "jobsd v1.2.3 commit 0123456789ab go1.25.0 linux/amd64", v.String())
	require.Equal(t, "jobsd (devel) commit unknown go1.25.0 linux/amd64", buildVersion{Version: "(devel)", Go: "go1.25.0", Platform: "linux/amd64"}.String())
}

// TestServeBrokerList: --amqp-url takes several brokers separated by commas
// (a cluster's nodes); serve starts when the first is down and the relay
// connects to the next. No password is printed.
func TestServeBrokerList(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	list := "amqp://guest:" + secret + "@127.0.0.1:1/," + b.URL
	p, base := startServe(t, opsEnv("DATABASE_URL="+db.URL), "--amqp-url", list, "--exchange", b.Name("list"))
	code, _ := get(t, base+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), "broker connected") }, deadline, 10*time.Millisecond)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(deadline))
	require.NotContains(t, p.Output(), secret)
}
