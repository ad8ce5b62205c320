package cluster_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/raftlog"
)

// TestConfigBoundsAppendEntriesBytes: a configuration under which one Raft
// AppendEntries could carry more than cluster.MaxAppendEntriesBytes, or in
// which an accepted event could never be read back, does not start.
func TestConfigBoundsAppendEntriesBytes(t *testing.T) {
	withLimits := func(f func(*contract.Limits)) contract.Limits {
		l := contract.DefaultLimits
		f(&l)
		return l
	}
	withEntries := func(n int) raftlog.Config {
		rc := raftlog.DefaultConfig()
		rc.MaxAppendEntries = n
		return rc
	}
	for _, tc := range []struct {
		name    string
		limits  contract.Limits
		raft    raftlog.Config
		wantErr string // "" for a valid config
	}{
		{"defaults", contract.Limits{}, raftlog.Config{}, ""},
		{"defaults are at most the bound", contract.DefaultLimits, withEntries(cluster.MaxAppendEntriesFor(contract.DefaultLimits)), ""},
		{"old defaults: 256 entries of 16 MiB", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 16 << 20 }), withEntries(256), "Raft.MaxAppendEntries"},
		{"default entries with 4 MiB appends", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 4 << 20 }), raftlog.Config{}, "lower MaxAppendEntries to 16"},
		{"4 MiB appends, 16 entries", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 4 << 20 }), withEntries(16), ""},
		{"small appends still make 1 MiB coalesced entries", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 4 << 10 }), withEntries(65), "Raft.MaxAppendEntries"},
		{"small appends, 64 entries", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 4 << 10 }), withEntries(64), ""},
		{"no append bound", withLimits(func(l *contract.Limits) { l.MaxBatchBytes = 0 }), raftlog.Config{}, "Limits.MaxBatchBytes"},
		{"negative query bound", withLimits(func(l *contract.Limits) { l.MaxQueryBytes = -1 }), raftlog.Config{}, "Limits.MaxQueryBytes"},
		{"query bound below the largest event", withLimits(func(l *contract.Limits) { l.MaxQueryBytes = l.MaxPayloadBytes }), raftlog.Config{}, "Limits.MaxQueryBytes"},
		{"no query bound", withLimits(func(l *contract.Limits) { l.MaxQueryBytes = 0 }), raftlog.Config{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cluster.Config{NodeID: "a", DataDir: "d", RaftAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2", GRPCAddr: "127.0.0.1:3",
				Limits: tc.limits, Raft: tc.raft}
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if n, per := cfg.Raft.MaxAppendEntries, max(cfg.Limits.MaxBatchBytes, 1<<20); n*per > cluster.MaxAppendEntriesBytes {
					t.Fatalf("valid config allows %d entries of %d bytes per AppendEntries, over %d", n, per, cluster.MaxAppendEntriesBytes)
				}
				return
			}
			if !errors.Is(err, cluster.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %q", err, tc.wantErr)
			}
		})
	}
}
