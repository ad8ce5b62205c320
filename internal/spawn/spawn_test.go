//go:build unix

package spawn

import (
	"os/exec"
	"syscall"
	"testing"
)

// A started child is the leader of a process group of its own, so a
// signal to the group reaches it and not the test.
func TestStartOwnProcessGroup(t *testing.T) {
	for range 3 { // more than one start goes through the same forking thread
		cmd := exec.Command("sleep", "30")
		if err := Start(cmd); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			t.Fatal(err)
		}
		if pgid != pid {
			t.Errorf("child %d is in process group %d, want its own", pid, pgid)
		}
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil {
			t.Error("child killed through its group exited cleanly")
		}
	}
}

func TestStartError(t *testing.T) {
	if err := Start(exec.Command("/no/such/binary")); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}
