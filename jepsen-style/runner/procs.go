package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/factstr/factstr-go/internal/spawn"
)

// node is one factstr-node process in its namespace.
type node struct {
	i       int
	name    string
	args    []string
	bin     string
	logPath string
	// env holds the secrets (cluster key, token), kept out of args, which
	// the log's start line prints.
	env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
	pids   *pidFile
}

// pidFile mirrors a set of child pids into StateDir/name, so that Cleanup
// (jepsen -cleanup) can kill what an interrupted run left.
type pidFile struct {
	name string // default "pids"
	mu   sync.Mutex
	pids map[int]bool
}

func (p *pidFile) set(pid int, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.pids[pid] = true
	} else {
		delete(p.pids, pid)
	}
	var b strings.Builder
	for k := range p.pids {
		fmt.Fprintf(&b, "%d\n", k)
	}
	name := p.name
	if name == "" {
		name = "pids"
	}
	_ = os.WriteFile(filepath.Join(StateDir, name), []byte(b.String()), 0o644)
}

func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return nil
	}
	lf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "\n=== start %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(n.args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", nsName(n.i), n.bin}, n.args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), n.env...)
	if err := spawn.Start(cmd); err != nil { // its own process group, killed with the runner
		lf.Close()
		return err
	}
	n.cmd, n.paused = cmd, false
	n.exited = make(chan struct{})
	n.pids.set(cmd.Process.Pid, true)
	go func(cmd *exec.Cmd, ch chan struct{}) {
		_ = cmd.Wait()
		lf.Close()
		n.pids.set(cmd.Process.Pid, false)
		n.mu.Lock()
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		close(ch)
	}(cmd, n.exited)
	return nil
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.cmd.Process.Signal(sig)
}

// kill SIGKILLs the node and waits for it to be gone.
func (n *node) kill() {
	n.mu.Lock()
	cmd, ch := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

// stop terminates gracefully, then kills.
func (n *node) stop(ctx context.Context) {
	n.mu.Lock()
	cmd, ch := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		n.kill()
	case <-ctx.Done():
		n.kill()
	}
}
