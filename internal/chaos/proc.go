package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// restartDelay is how long the supervisor waits before restarting a process
// that ended, like a service manager's RestartSec.
const restartDelay = time.Second

// healthTimeout bounds one /readyz request (it pings the database, through a
// pool that may be busy).
const healthTimeout = 5 * time.Second

// Proc is one jobsd process under a supervisor that restarts it whenever it
// ends (kill -9 by a scenario, or an exit of its own), until Stop.
type Proc struct {
	Name     string // serve-a, consume-1, ...
	role     string // serve or consume
	bin      string
	args     []string
	httpAddr string
	log      io.Writer

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when the current incarnation ended
	killing   bool          // the current incarnation is being killed by the harness
	stopping  bool
	kills     int      // incarnations the harness killed
	exits     []string // exits of the process's own (code or signal)
	dups      []int64  // consumer duplicates reported by each incarnation
	finalCode int      // exit code of the graceful stop; -1 if killed at the stop's timeout
	stopped   chan struct{}
}

func newProc(name, role, bin, httpAddr string, log io.Writer, args []string) *Proc {
	return &Proc{Name: name, role: role, bin: bin, httpAddr: httpAddr, log: log, args: args, stopped: make(chan struct{})}
}

// start starts the first incarnation and the supervisor.
func (p *Proc) start() error {
	if err := p.spawn(); err != nil {
		return err
	}
	go p.supervise()
	return nil
}

func (p *Proc) spawn() error {
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// Its own process group: a Ctrl-C at the terminal reaches the harness,
	// which stops the processes itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.killing = cmd, done, false
	p.dups = append(p.dups, 0)
	p.mu.Unlock()
	fmt.Fprintf(p.log, "chaos: started %s (pid %d)\n", p.Name, cmd.Process.Pid)
	return nil
}

func (p *Proc) supervise() {
	defer close(p.stopped)
	for {
		p.mu.Lock()
		cmd, done := p.cmd, p.done
		p.mu.Unlock()
		err := cmd.Wait()
		close(done)
		p.mu.Lock()
		stopping, killing := p.stopping, p.killing
		code := exitDescription(cmd, err)
		switch {
		case stopping:
			p.finalCode = cmd.ProcessState.ExitCode()
		case killing:
			p.kills++
		default:
			p.exits = append(p.exits, code)
		}
		p.mu.Unlock()
		fmt.Fprintf(p.log, "chaos: %s ended: %s\n", p.Name, code)
		if stopping {
			return
		}
		time.Sleep(restartDelay)
		p.mu.Lock()
		stopping = p.stopping
		p.mu.Unlock()
		if stopping {
			return
		}
		for p.spawn() != nil {
			time.Sleep(restartDelay)
		}
	}
}

func exitDescription(cmd *exec.Cmd, err error) string {
	st := cmd.ProcessState
	if st == nil {
		return fmt.Sprint(err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String()
	}
	return "exit " + strconv.Itoa(st.ExitCode())
}

// Kill9 sends SIGKILL to the running incarnation and waits until it is gone;
// the supervisor restarts it.
func (p *Proc) Kill9() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.killing = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then kills.
// It returns the exit code of the graceful stop, -1 when it had to kill.
func (p *Proc) Stop(timeout time.Duration) int {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		<-p.stopped
		return p.finalCode
	}
	p.stopping = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		p.mu.Lock()
		p.finalCode = -1
		p.mu.Unlock()
	}
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.finalCode
}

// Healthy reports whether the process is ready: /readyz answers 200, and for
// serve the relay is connected to a broker that does not block it.
func (p *Proc) Healthy(ctx context.Context) bool { return p.unhealthy(ctx) == "" }

// unhealthy says why the process is not ready, "" when it is.
func (p *Proc) unhealthy(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "timeout"
		}
		return "down"
	}
	defer resp.Body.Close()
	var body struct {
		Broker   string `json:"broker"`
		Database string `json:"database"`
		Status   string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%d %s%s", resp.StatusCode, body.Database, body.Status)
	}
	if p.role == "serve" && body.Broker != "connected" {
		return "broker " + body.Broker
	}
	return ""
}

// scrapeDuplicates reads a consumer's count of duplicate deliveries (messages
// its inbox had already applied) and keeps the last value of each incarnation.
func (p *Proc) scrapeDuplicates(ctx context.Context, queue string) {
	if p.role != "consume" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p.mu.Lock()
	incarnation := len(p.dups) - 1
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`jobsd_consumer_messages_total{queue=%q,result="duplicate"} `, queue)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				p.mu.Lock()
				if incarnation < len(p.dups) && int64(f) > p.dups[incarnation] {
					p.dups[incarnation] = int64(f)
				}
				p.mu.Unlock()
			}
		}
	}
}

// Duplicates is the sum of the duplicate deliveries each incarnation reported
// (what an incarnation counted after its last scrape is missed).
func (p *Proc) Duplicates() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, d := range p.dups {
		n += d
	}
	return n
}

// Fate says what happened to the process: "ok" (survived), "rec" plus the
// number of kills (killed by the scenario, restarted), "exit" plus its own
// exits (it ended without being killed), and "stop!" when the final graceful
// stop did not exit 0.
func (p *Proc) Fate() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s string
	switch {
	case len(p.exits) > 0:
		s = fmt.Sprintf("exit×%d(%s)", len(p.exits), p.exits[0])
	case p.kills > 0:
		s = fmt.Sprintf("rec×%d", p.kills)
	default:
		s = "ok"
	}
	if p.stopping && p.finalCode != 0 {
		s += fmt.Sprintf(",stop=%d", p.finalCode)
	}
	return s
}

// ownExits is how many times the process ended without being killed.
func (p *Proc) ownExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.exits)
}
