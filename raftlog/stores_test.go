package raftlog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openStores(t *testing.T, cfg Config) *Stores {
	t.Helper()
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t, "")
	_, err := Open(t.Context(), cfg)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open = %v, want ErrInvalidConfig", err)
	}
	if _, statErr := os.Stat(filepath.Join(cfg.DataDir, raftDirName)); !os.IsNotExist(statErr) {
		t.Errorf("Open created %s despite an invalid config", raftDirName)
	}
}

func TestOpenTimesOutOnLockedDataDir(t *testing.T) {
	cfg := testConfig(t, "n1")
	openStores(t, cfg) // holds the bolt file lock

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open = %v, want a lock timeout", err)
	}
}

// TestSingleNodeRestart bootstraps one node, applies and snapshots, shuts
// down, reopens the same DataDir and checks that the log, the snapshot and
// the vote state survived.
func TestSingleNodeRestart(t *testing.T) {
	cfg := testConfig(t, "n1")
	s := openStores(t, cfg)

	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "raft", "raft.db")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("raft.db: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "raft", "snapshots")); err != nil || !fi.IsDir() {
		t.Fatalf("snapshots dir: %v", err)
	}
	if got := s.Dir(); got != filepath.Join(cfg.DataDir, "raft") {
		t.Errorf("Dir() = %q", got)
	}
	if has, err := s.HasExistingState(); err != nil || has {
		t.Fatalf("HasExistingState on a fresh dir = %v, %v; want false", has, err)
	}

	addr := s.Transport.LocalAddr()
	fsm := &countingFSM{}
	r := newRaft(t, s, fsm)
	boot := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(cfg.NodeID), Address: addr}}}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	waitFor(t, 5*time.Second, "single node to lead", func() bool { return r.State() == raft.Leader })

	applyN(t, r, 3)
	if err := r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapIndex := r.LastIndex()
	applyN(t, r, 2)
	lastIndex := r.LastIndex()
	term := r.CurrentTerm()

	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Reopen on the same address: Close must have released the port.
	cfg.BindAddr = string(addr)
	s2 := openStores(t, cfg)
	if has, err := s2.HasExistingState(); err != nil || !has {
		t.Fatalf("HasExistingState after restart = %v, %v; want true", has, err)
	}
	if got, err := s2.LogStore.LastIndex(); err != nil || got != lastIndex {
		t.Fatalf("LastIndex after restart = %d, %v; want %d", got, err, lastIndex)
	}
	if got, err := s2.StableStore.GetUint64([]byte("CurrentTerm")); err != nil || got != term {
		t.Fatalf("stored term = %d, %v; want %d", got, err, term)
	}
	snaps, err := s2.SnapshotStore.List()
	if err != nil || len(snaps) != 1 || snaps[0].Index > snapIndex {
		t.Fatalf("snapshots after restart = %v, %v; want one at or below index %d", snaps, err, snapIndex)
	}

	fsm2 := &countingFSM{}
	r2 := newRaft(t, s2, fsm2)
	if err := r2.BootstrapCluster(boot).Error(); !errors.Is(err, raft.ErrCantBootstrap) {
		t.Fatalf("bootstrap over existing state = %v, want ErrCantBootstrap", err)
	}
	waitFor(t, 5*time.Second, "restarted node to lead", func() bool { return r2.State() == raft.Leader })

	// NoSnapshotRestoreOnStart: raft does not call Restore, and replays only
	// the entries after the snapshot. The two commands applied after the
	// snapshot arrive again; the three before it do not.
	waitFor(t, 5*time.Second, "replay of post-snapshot entries", func() bool { return fsm2.Count() >= 2 })
	if fsm2.Restored() {
		t.Error("raft restored the snapshot despite NoSnapshotRestoreOnStart")
	}
	for _, idx := range fsm2.Indexes() {
		if idx <= snaps[0].Index {
			t.Errorf("replayed index %d is covered by the snapshot at %d", idx, snaps[0].Index)
		}
	}

	applyN(t, r2, 1)
	if got := fsm2.Count(); got != 3 {
		t.Errorf("count after one more apply = %d, want 3", got)
	}
}
