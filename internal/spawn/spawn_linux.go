//go:build linux

package spawn

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd in a process group of its own; the kernel SIGKILLs it
// when this process dies.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	forker.once.Do(func() {
		forker.reqs = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range forker.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := startReq{cmd: cmd, err: make(chan error, 1)}
	forker.reqs <- r
	return <-r.err
}

// The parent-death signal fires when the forking *thread* exits, not the
// process (prctl(2), PR_SET_PDEATHSIG). Go may end a thread whose
// goroutine locked it, so every child is forked from one goroutine that
// locks its thread and never returns; it is process-wide because that
// thread is.
var forker struct {
	once sync.Once
	reqs chan startReq
}

type startReq struct {
	cmd *exec.Cmd
	err chan error
}
