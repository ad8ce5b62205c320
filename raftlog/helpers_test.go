package raftlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testConfig is DefaultConfig with fast timeouts, a temp DataDir and an
// ephemeral port on loopback.
func testConfig(t *testing.T, id string) Config {
	t.Helper()
	c := DefaultConfig()
	c.NodeID = id
	c.DataDir = t.TempDir()
	c.BindAddr = "127.0.0.1:0"
	// Fast but not razor-thin: -race slows scheduling, and a spurious
	// election would make the partition test flaky.
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 10 * time.Millisecond
	c.TransportTimeout = 2 * time.Second
	c.Logger = testLogger(t)
	return c
}

// testLogger writes warnings and errors to the test's output, and drops
// anything logged after the test ends (raft's goroutines may still log
// while they wind down, and writing to t.Output then panics).
func testLogger(t *testing.T) *slog.Logger {
	w := &guardedWriter{w: t.Output()}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type guardedWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *guardedWriter) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// countingFSM counts applied commands and remembers their indexes.
type countingFSM struct {
	mu       sync.Mutex
	count    uint64
	indexes  []uint64
	restored bool
}

func (f *countingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.indexes = append(f.indexes, l.Index)
	return f.count
}

func (f *countingFSM) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

func (f *countingFSM) Indexes() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.indexes...)
}

func (f *countingFSM) Restored() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restored
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countSnapshot(f.count), nil
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count = binary.BigEndian.Uint64(b[:])
	f.restored = true
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(s))
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// applyN applies n commands on r and waits for each to commit.
func applyN(t *testing.T, r *raft.Raft, n int) {
	t.Helper()
	for i := range n {
		if err := r.Apply([]byte{byte(i)}, 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
}

// newRaft starts a raft node on s and shuts it down at cleanup (before
// s.Close, which was registered earlier).
func newRaft(t *testing.T, s *Stores, fsm raft.FSM) *raft.Raft {
	t.Helper()
	r, err := raft.NewRaft(s.RaftConfig(), fsm, s.LogStore, s.StableStore, s.SnapshotStore, s.Transport)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}
