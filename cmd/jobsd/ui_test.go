package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRiverUIInChromium loads River UI's jobs page in a real headless
// Chromium and checks that the page, rendered by River UI's JavaScript from
// its API, lists the signup's create_profile jobs; it also saves a screenshot
// (to $JOBSD_UI_SCREENSHOT when set, else to a temporary directory).
//
// It needs Debian's chromium package: without it the test skips, unless
// JOBSD_TEST_UI is set (as `make test/ui` does, after installing chromium),
// in which case it fails. CI machines without a browser therefore skip it.
func TestRiverUIInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("JOBSD_TEST_UI") != "" {
			t.Fatal("chromium not found and JOBSD_TEST_UI is set: apt-get install chromium (make test/ui does)")
		}
		t.Skip("chromium not found; skipping the River UI browser check (make test/ui installs it)")
	}
	db := newOpsDB(t)
	_, base := startServe(t, db.env, "--no-relay")
	postSignup(t, base, "ui@example.com")
	waitUntil(t, 30*time.Second, "the signup's jobs to complete", func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE state = 'completed'").Scan(&n))
		return n == 3
	})

	page := base + "/riverui/jobs?state=completed"
	dir := t.TempDir()
	dom := runChromium(t, chromium, dir, "--dump-dom", page)
	require.Contains(t, string(dom), "create_profile", "River UI's jobs page does not list the job")
	require.Contains(t, string(dom), `{"service":"ride","user_id":1}`, "River UI's jobs page does not show the job's args")

	shot := os.Getenv("JOBSD_UI_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(dir, "riverui-jobs.png")
	}
	runChromium(t, chromium, dir, "--window-size=1280,800", "--screenshot="+shot, page)
	png, err := os.ReadFile(shot)
	require.NoError(t, err, "chromium wrote no screenshot")
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "screenshot is not a PNG")
	t.Logf("River UI screenshot: %s (%d bytes)", shot, len(png))
}

// runChromium runs headless Chromium with its own profile in dir, on
// loopback only, and returns its stdout. The whole process group is killed
// if it hangs.
func runChromium(t *testing.T, chromium, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--virtual-time-budget=10000",
	}, args...)
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // no helper process outlives the run
	require.NoError(t, err, "chromium %v:\n%s", args, stderr.String())
	return stdout.Bytes()
}
