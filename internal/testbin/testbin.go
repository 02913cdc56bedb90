// Package testbin builds the real jobsd binary once per test process and runs
// it as a child process, so that tests exercise exactly what users run: flag
// parsing, exit codes, stderr, signals and SIGKILL.
//
// Only _test.go files may import it.
package testbin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobsd/jobsd/internal/testlog"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Path builds ./cmd/jobsd (once per test binary) and returns the executable.
func Path(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "jobsd-testbin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "jobsd")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/jobsd")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/jobsd: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// fastRaceExit stops a -race binary from sleeping a second at exit.
const fastRaceExit = "GORACE=atexit_sleep_ms=0"

// Cleanup removes the binary built by Path, if any. Call it at the end of
// TestMain; without it each test process leaves a binary in the temporary
// directory.
func Cleanup() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// Result is a finished run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs jobsd with args and extra environment (KEY=VALUE) and waits for it,
// at most a minute.
func Run(t testing.TB, env []string, args ...string) Result {
	t.Helper()
	return RunWithin(t, time.Minute, env, args...)
}

// RunWithin is Run for commands that may take longer than a minute on a
// loaded machine: it kills jobsd after timeout.
func RunWithin(t testing.TB, timeout time.Duration, env []string, args ...string) Result {
	t.Helper()
	bin := Path(t) // the build does not count against the run's timeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), fastRaceExit), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.Code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run jobsd %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// Process is a jobsd running in the background.
type Process struct {
	cmd    *exec.Cmd
	output *testlog.Buffer
	done   chan struct{}
	err    error
}

// Start starts jobsd with args in the background. Its combined output is kept
// (see Output) and also logged when the test fails. The process is killed when
// the test ends if it is still running.
func Start(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Env = append(append(os.Environ(), fastRaceExit), env...)
	p := &Process{cmd: cmd, output: &testlog.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jobsd: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of jobsd %s:\n%s", strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Output returns what the process wrote so far.
func (p *Process) Output() string { return p.output.String() }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits at most timeout for the process to exit and returns its exit
// code, or -1 on timeout.
func (p *Process) Wait(timeout time.Duration) int {
	select {
	case <-p.done:
		var exitErr *exec.ExitError
		if errors.As(p.err, &exitErr) {
			return exitErr.ExitCode()
		}
		if p.err != nil {
			return -1
		}
		return 0
	case <-time.After(timeout):
		return -1
	}
}

// State returns how the process ended (exit code or signal), or nil while it
// runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }
