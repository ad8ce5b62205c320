//go:build linux

package testcluster

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// setProcAttr puts the child in its own process group and has the kernel
// SIGKILL it when the test binary dies (a timed-out `go test` exits
// without running cleanups).
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// The parent-death signal fires when the forking *thread* exits, not the
// process. Go may end a thread whose goroutine locked it, so every child is
// forked from one goroutine that locks its thread and never returns.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func startCmd(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.err
}
