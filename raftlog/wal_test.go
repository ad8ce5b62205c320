package raftlog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestWALLogStore: with LogStore "wal" a new data directory gets a
// raft-wal log and stable store whose entries and term survive a reopen,
// and a directory that already holds raft.db stays on bolt.
func TestWALLogStore(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.LogStore = LogStoreWAL
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.LogStoreKind() != LogStoreWAL {
		t.Fatalf("kind %q, want wal", s.LogStoreKind())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, raftDirName, boltFileName)); !os.IsNotExist(err) {
		t.Fatalf("a wal node created %s", boltFileName)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := s.LogStore.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.StableStore.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with the default config: the directory keeps its kind.
	cfg.LogStore = ""
	s = openStores(t, cfg)
	if s.LogStoreKind() != LogStoreWAL {
		t.Fatalf("reopened kind %q, want wal", s.LogStoreKind())
	}
	last, err := s.LogStore.LastIndex()
	if err != nil || last != 5 {
		t.Fatalf("last index %d, %v; want 5", last, err)
	}
	var l raft.Log
	if err := s.LogStore.GetLog(3, &l); err != nil || l.Data[0] != 3 {
		t.Fatalf("entry 3: %+v, %v", l, err)
	}
	if term, err := s.StableStore.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term %d, %v; want 7", term, err)
	}
	if ok, err := s.HasExistingState(); err != nil || !ok {
		t.Fatalf("HasExistingState = %v, %v", ok, err)
	}
	// A second user of the directory is refused, not left hanging.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open = %v, want a lock timeout", err)
	}

	// A bolt directory stays bolt when the config asks for wal.
	bcfg := testConfig(t, "n2")
	bcfg.LogStore = LogStoreBolt
	b, err := Open(t.Context(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	bcfg.LogStore = LogStoreWAL
	b = openStores(t, bcfg)
	if b.LogStoreKind() != LogStoreBolt {
		t.Fatalf("existing bolt dir opened as %q", b.LogStoreKind())
	}
}
