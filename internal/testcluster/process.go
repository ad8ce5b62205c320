//go:build unix

package testcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/spawn"
)

// DefaultGrace is how long Terminate waits after SIGTERM before SIGKILL.
const DefaultGrace = 5 * time.Second

// Process is a child process in its own process group. Signals go to the
// whole group.
type Process struct {
	Name string

	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	state  *os.ProcessState
	err    error // from cmd.Wait
	paused bool
}

// Spawn starts cmd in a new process group (on Linux also with SIGKILL as its
// parent-death signal, so it dies with the test binary) and registers a
// cleanup that terminates it (SIGTERM, SIGKILL after DefaultGrace) if it is
// still running when the test ends. Env entries FACTSTR_* of the test's own
// environment are dropped (the binary reads its flags from them) unless cmd.Env
// is set.
func Spawn(t testing.TB, name string, cmd *exec.Cmd) (*Process, error) {
	t.Helper()
	p, err := startProcess(name, cmd)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { p.Terminate(DefaultGrace) })
	return p, nil
}

func startProcess(name string, cmd *exec.Cmd) (*Process, error) {
	if cmd.Env == nil {
		cmd.Env = CleanEnv()
	}
	if err := spawn.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.state, p.err = cmd.ProcessState, err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// CleanEnv is the test process's environment without FACTSTR_* variables,
// which the binary would read as flag values.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FACTSTR_") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and was reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit code, -1 while running or when killed by a signal.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// ExitErr is cmd.Wait's error: nil for exit code 0, an *exec.ExitError
// otherwise (also for death by signal). Nil while running.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ExitString describes how the process ended ("running" while it runs).
func (p *Process) ExitString() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

// Signal sends sig to the process group; it does nothing once the process
// has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Wait waits up to timeout for the process to exit and returns ExitErr, or
// an error saying it is still running.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.ExitErr()
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.Pid(), timeout)
	}
}

// Kill sends SIGKILL to the group and waits (up to 10s) for the exit.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die within 10s of SIGKILL", p.Name, p.Pid())
	}
}

// Terminate sends SIGTERM (and SIGCONT, in case it is paused), waits up to
// grace, then SIGKILLs. It reports whether the process exited by itself
// within grace, and its exit error (nil: exit code 0).
func (p *Process) Terminate(grace time.Duration) (clean bool, exitErr error) {
	if p.Exited() {
		return true, p.ExitErr()
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
		return true, p.ExitErr()
	case <-time.After(grace):
	}
	if err := p.Kill(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.Name, p.Pid(), grace)
}

// Pause sends SIGSTOP.
func (p *Process) Pause() error {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
	return p.Signal(syscall.SIGSTOP)
}

// Resume sends SIGCONT.
func (p *Process) Resume() error {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
	return p.Signal(syscall.SIGCONT)
}

// Paused reports whether Pause was called without a Resume since.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}
