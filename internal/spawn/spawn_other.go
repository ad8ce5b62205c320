//go:build unix && !linux

package spawn

import (
	"os/exec"
	"syscall"
)

// Start starts cmd in a process group of its own.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd.Start()
}
