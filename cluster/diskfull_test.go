package cluster_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/wire"
)

// mountSmallFS mounts a tmpfs of size bytes for the test, or skips.
func mountSmallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); the watermark's unit test still runs", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// On a real, small file system: filled below the watermark, writes are
// refused with ResourceExhausted; with space back, they succeed again.
func TestFullDiskRefusesWritesUntilSpaceReturns(t *testing.T) {
	const minFree = 8 << 20
	mnt := mountSmallFS(t, "64m")
	n := startNode(t, nodeSpec{
		id: "d1", dir: filepath.Join(mnt, "d1"), raftPort: freeport.T(t, true), gossipPort: freeport.T(t, true), expect: 1,
		tune: func(c *cluster.Config) { c.MinFreeDisk = minFree },
	})
	t.Cleanup(n.stop)
	if _, err := n.WaitLeader(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.ReadBarrier(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctxT(t), []contract.NewEvent{ev("d", `{"before":true}`)}); err != nil {
		t.Fatal(err)
	}

	// Fill the file system to half the watermark.
	free, err := diskguard.Statfs(mnt)
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, free-minFree/2), 0o600); err != nil {
		t.Fatal(err)
	}
	appendUntil := func(want func(error) bool, what string) error {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second) // the guard re-reads free space every 100 ms
		for {
			_, err := n.Append(ctxT(t), []contract.NewEvent{ev("d", `{}`)})
			if want(err) {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatalf("append never %s: last error %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	err = appendUntil(func(err error) bool { return err != nil }, "refused")
	if !errors.Is(err, diskguard.ErrNoSpace) {
		t.Fatalf("append on a full disk: %v, want ErrNoSpace", err)
	}
	if code := status.Code(wire.ToStatus(err)); code != codes.ResourceExhausted {
		t.Fatalf("ErrNoSpace maps to %v, want ResourceExhausted", code)
	}
	if !n.Info().DiskLow {
		t.Fatal("DiskLow false while writes are refused")
	}
	if _, err := n.AppendIf(ctxT(t), []contract.NewEvent{ev("d", `{}`)}, contract.EventQuery{}, 0); !errors.Is(err, diskguard.ErrNoSpace) {
		t.Fatalf("AppendIf on a full disk: %v, want ErrNoSpace", err)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	appendUntil(func(err error) bool { return err == nil }, "accepted after space returned")
	if n.Info().DiskLow {
		t.Fatal("DiskLow still true after space returned")
	}
}
