package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Rabbit is a RabbitMQ cluster of the harness's own: three rabbitmq-server
// nodes on one machine, each with its own node name, ports and directories,
// joined with rabbitmqctl join_cluster. It never touches another broker: every
// rabbitmqctl call names one of its nodes, and a kill -9 targets only the beam
// process whose environment names one of them.
type Rabbit struct {
	Nodes []*RabbitNode
}

// RabbitNode is one node of the cluster.
type RabbitNode struct {
	Name     string // e.g. chaos1a2b1@localhost
	Port     int    // AMQP port on 127.0.0.1
	distPort int
	dir      string
	env      []string
}

// URL is the node's AMQP URL.
func (n *RabbitNode) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port) }

// StartRabbit starts a cluster of size nodes under parent; tag makes the node
// names unique to this run.
func StartRabbit(ctx context.Context, parent, tag string, size int) (*Rabbit, error) {
	r := &Rabbit{}
	for i := 1; i <= size; i++ {
		n, err := newRabbitNode(parent, fmt.Sprintf("chaos%s%d@localhost", tag, i))
		if err != nil {
			return r, err
		}
		r.Nodes = append(r.Nodes, n)
	}
	// Boot in parallel: each takes several seconds.
	errs := make([]error, len(r.Nodes))
	var wg sync.WaitGroup
	for i, n := range r.Nodes {
		wg.Go(func() { errs[i] = n.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	for _, n := range r.Nodes[1:] {
		for _, step := range [][]string{{"stop_app"}, {"reset"}, {"join_cluster", r.Nodes[0].Name}, {"start_app"}} {
			if _, err := n.Ctl(ctx, step...); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

func newRabbitNode(parent, name string) (*RabbitNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dist, err := freePort()
	if err != nil {
		return nil, err
	}
	short, _, _ := strings.Cut(name, "@")
	n := &RabbitNode{Name: name, Port: port, distPort: dist, dir: filepath.Join(parent, short)}
	for _, d := range []string{n.dir, filepath.Join(n.dir, "mnesia"), filepath.Join(n.dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The machine's /etc/rabbitmq/rabbitmq.conf may set listeners.tcp.local,
	// which wins over RABBITMQ_NODE_PORT: each node gets its own file.
	conf := filepath.Join(n.dir, "rabbitmq.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listeners.tcp.local = 127.0.0.1:%d\n", port), 0o644); err != nil {
		return nil, err
	}
	plugins := filepath.Join(n.dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o644); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 { // rabbitmq-server switches to the rabbitmq user
		if err := chownTree("rabbitmq", parent, n.dir); err != nil {
			return nil, err
		}
	}
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.dir, "advanced.config"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"),
	)
	return n, nil
}

// Start boots the node (detached) and waits until it runs.
func (n *RabbitNode) Start(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "rabbitmq-server", "-detached")
	cmd.Env = n.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C reaches the harness only
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start %s: %w\n%s", n.Name, err, out)
	}
	// await_startup fails at once while the node is not registered yet.
	err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		_, err := n.Ctl(ctx, "await_startup", "--timeout", "60")
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, filepath.Join(n.dir, "log"))
	}
	return nil
}

// Stop stops the node cleanly and waits until its process is gone
// (rabbitmqctl stop may return a moment before).
func (n *RabbitNode) Stop(ctx context.Context) error {
	if _, err := n.Ctl(ctx, "stop"); err != nil {
		return err
	}
	return waitFor(ctx, time.Minute, func() (bool, error) { return !n.Running(), nil })
}

// Kill sends SIGKILL to the node's own beam process and waits until it is gone.
func (n *RabbitNode) Kill() error {
	pids := n.pids()
	if len(pids) == 0 {
		return fmt.Errorf("kill %s: no process found", n.Name)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return waitFor(context.Background(), 30*time.Second, func() (bool, error) { return len(n.pids()) == 0, nil })
}

// Running reports whether the node's beam process exists.
func (n *RabbitNode) Running() bool { return len(n.pids()) > 0 }

// pids finds the node's beam processes: those whose environment names it.
// Only these are ever killed, never another broker's.
func (n *RabbitNode) pids() []int {
	entries, _ := os.ReadDir("/proc")
	want := []byte("RABBITMQ_NODENAME=" + n.Name + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if !bytes.HasPrefix(comm, []byte("beam")) {
			continue
		}
		// The server's beam boots rabbit; rabbitmqctl's beam, which has the
		// same environment, does not.
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !bytes.Contains(cmdline, []byte("\x00rabbit\x00boot\x00")) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(append(env, 0), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Ctl runs rabbitmqctl against this node.
func (n *RabbitNode) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.tool(ctx, "rabbitmqctl", args...)
}

func (n *RabbitNode) tool(ctx context.Context, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On cancel, kill the whole group (the tools are scripts that run
	// others) and stop waiting for output a lingering child still holds.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s -n %s %s: %w\n%s", tool, n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// SetMemoryWatermark sets the node's vm_memory_high_watermark (a fraction of
// the machine's memory): a tiny one raises the memory alarm, which blocks
// publishers on every node of the cluster.
func (n *RabbitNode) SetMemoryWatermark(ctx context.Context, fraction string) error {
	_, err := n.Ctl(ctx, "set_vm_memory_high_watermark", fraction)
	return err
}

// ConnectionsOnPort counts the client connections the cluster holds on the
// AMQP port of node.
func (r *Rabbit) ConnectionsOnPort(ctx context.Context, via *RabbitNode, port int) (int, error) {
	out, err := via.Ctl(ctx, "list_connections", "-q", "--no-table-headers", "port")
	if err != nil {
		return 0, err
	}
	count := 0
	for _, line := range strings.Fields(out) {
		if line == strconv.Itoa(port) {
			count++
		}
	}
	return count, nil
}

// Running returns a node that runs, to address cluster-wide commands to.
func (r *Rabbit) Running() *RabbitNode {
	for _, n := range r.Nodes {
		if n.Running() {
			return n
		}
	}
	return r.Nodes[0]
}

// URLs lists the nodes' AMQP URLs, comma-separated, starting with node first.
func (r *Rabbit) URLs(first int) string {
	urls := make([]string, len(r.Nodes))
	for i := range r.Nodes {
		urls[i] = r.Nodes[(first+i)%len(r.Nodes)].URL()
	}
	return strings.Join(urls, ",")
}

// Stop stops every node (kill -9 what does not stop) and removes their
// directories.
func (r *Rabbit) Stop() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range r.Nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if n.Running() {
				if err := n.Stop(ctx); err != nil && n.Running() {
					_ = n.Kill()
				}
			}
			if err := os.RemoveAll(n.dir); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// chownTree gives dir and everything under it to the named user, and lets it
// traverse parent.
func chownTree(name, parent, dir string) error {
	if err := chownTo(name, parent); err != nil {
		return err
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return chownTo(name, parent, path)
	})
}
