package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestREADMECommands keeps the README's shell blocks pasteable: every
// `bin/jobsd ...` line must parse (its flags exist: it is run with --help),
// the read-only ones run for real against a fresh database, every
// `psql ... -f sql/queries/...` line runs, and every `make` target exists.
func TestREADMECommands(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	env := dbEnv(db.URL)
	readOnly := []string{"stats", "jobs list", "outbox stats", "outbox list"}

	lines := readmeShellLines(t)
	require.NotEmpty(t, lines)
	var checked int
	for _, line := range lines {
		fields := strings.Fields(line)
		switch {
		case fields[0] == "bin/jobsd":
			args := fields[1:]
			res := testbin.Run(t, env, append(args, "--help")...)
			require.Equal(t, 0, res.Code, "README line %q does not parse: %s", line, res.Stderr)
			for _, cmd := range readOnly {
				if strings.HasPrefix(strings.Join(args, " "), cmd) {
					res := testbin.Run(t, env, args...)
					require.Equal(t, 0, res.Code, "README line %q fails: %s", line, res.Stderr)
				}
			}
			checked++
		case fields[0] == "psql":
			psql, err := exec.LookPath("psql")
			if err != nil {
				continue
			}
			args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.URL}
			for i := 2; i < len(fields); i++ { // fields[1] is the quoted URL
				arg := strings.Trim(fields[i], `"`)
				if strings.HasPrefix(arg, "sql/") {
					arg = filepath.Join("..", "..", arg)
				}
				args = append(args, arg)
			}
			out, err := exec.Command(psql, args...).CombinedOutput()
			require.NoError(t, err, "README line %q fails: %s", line, out)
			checked++
		case fields[0] == "make":
			out, err := exec.Command("make", "-n", "-C", filepath.Join("..", ".."), fields[1]).CombinedOutput()
			require.NoError(t, err, "README line %q: no such make target: %s", line, out)
			checked++
		}
	}
	require.Greater(t, checked, 10, "the README's shell blocks were not found")
}

// readmeShellLines returns the lines of the README's ```sh blocks, without
// trailing comments.
func readmeShellLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "```sh":
			inBlock = true
		case line == "```":
			inBlock = false
		case inBlock:
			if i := strings.Index(line, "  #"); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); line != "" {
				lines = append(lines, line)
			}
		}
	}
	require.NoError(t, sc.Err())
	return lines
}
