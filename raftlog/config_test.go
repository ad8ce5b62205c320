package raftlog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// badFields lists the Field of every *ConfigError in err.
func badFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var ce *ConfigError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(err, &ce) {
			out = append(out, ce.Field)
		}
	}
	walk(err)
	return out
}

func validTestConfig() Config {
	c := DefaultConfig()
	c.NodeID = "node-0"
	c.DataDir = "/var/lib/factstr"
	c.BindAddr = "127.0.0.1:7000"
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"fast test timeouts", func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout =
				50*time.Millisecond, 50*time.Millisecond, 25*time.Millisecond, 5*time.Millisecond
		}, ""},
		{"ephemeral port", func(c *Config) { c.BindAddr = "127.0.0.1:0" }, ""},
		{"all interfaces with DNS advertise", func(c *Config) {
			c.BindAddr, c.AdvertiseAddr = "0.0.0.0:7000", "node-0.factstr.ns.svc.cluster.local:7000"
		}, ""},
		{"IPv6 advertise", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "[::]:7000", "[fd00::1]:7000" }, ""},
		{"hostname bind", func(c *Config) { c.BindAddr = "localhost:7000" }, ""},
		{"trailing equals threshold", func(c *Config) { c.TrailingLogs = c.SnapshotThreshold }, ""},
		{"max append entries at raft cap", func(c *Config) { c.MaxAppendEntries = 1024 }, ""},

		{"empty NodeID", func(c *Config) { c.NodeID = "" }, "NodeID"},
		{"NodeID with space", func(c *Config) { c.NodeID = "node 0" }, "NodeID"},
		{"NodeID with control char", func(c *Config) { c.NodeID = "node\x00" }, "NodeID"},
		{"empty DataDir", func(c *Config) { c.DataDir = "" }, "DataDir"},
		{"empty BindAddr", func(c *Config) { c.BindAddr = "" }, "BindAddr"},
		{"BindAddr without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"BindAddr port out of range", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, "BindAddr"},
		{"BindAddr named port", func(c *Config) { c.BindAddr = "127.0.0.1:raft" }, "BindAddr"},
		{"unspecified bind needs advertise", func(c *Config) { c.BindAddr = "0.0.0.0:7000" }, "AdvertiseAddr"},
		{"empty-host bind needs advertise", func(c *Config) { c.BindAddr = ":7000" }, "AdvertiseAddr"},
		{"IPv6 unspecified bind needs advertise", func(c *Config) { c.BindAddr = "[::]:7000" }, "AdvertiseAddr"},
		{"unspecified advertise", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7000" }, "AdvertiseAddr"},
		{"IPv6 unspecified advertise", func(c *Config) { c.AdvertiseAddr = "[::]:7000" }, "AdvertiseAddr"},
		{"advertise without host", func(c *Config) { c.AdvertiseAddr = ":7000" }, "AdvertiseAddr"},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "node-0:0" }, "AdvertiseAddr"},
		{"advertise without port", func(c *Config) { c.AdvertiseAddr = "node-0" }, "AdvertiseAddr"},
		{"heartbeat too low", func(c *Config) { c.HeartbeatTimeout = time.Millisecond }, "HeartbeatTimeout"},
		{"election too low", func(c *Config) { c.ElectionTimeout = time.Millisecond }, "ElectionTimeout"},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 }, "ElectionTimeout"},
		{"lease zero", func(c *Config) { c.LeaderLeaseTimeout = 0 }, "LeaderLeaseTimeout"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "LeaderLeaseTimeout"},
		{"commit timeout zero", func(c *Config) { c.CommitTimeout = 0 }, "CommitTimeout"},
		{"max append entries zero", func(c *Config) { c.MaxAppendEntries = 0 }, "MaxAppendEntries"},
		{"max append entries above raft cap", func(c *Config) { c.MaxAppendEntries = 1025 }, "MaxAppendEntries"},
		{"snapshot threshold zero", func(c *Config) { c.SnapshotThreshold = 0 }, "SnapshotThreshold"},
		{"snapshot interval zero", func(c *Config) { c.SnapshotInterval = 0 }, "SnapshotInterval"},
		{"trailing below threshold", func(c *Config) { c.TrailingLogs = c.SnapshotThreshold - 1 }, "TrailingLogs"},
		{"log cache zero", func(c *Config) { c.LogCacheSize = 0 }, "LogCacheSize"},
		{"transport pool zero", func(c *Config) { c.TransportMaxPool = 0 }, "TransportMaxPool"},
		{"transport timeout zero", func(c *Config) { c.TransportTimeout = 0 }, "TransportTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validTestConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.field)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			// A heartbeat below raft's minimum also breaks the lease rule,
			// so only the named field is required, first.
			if got := badFields(err); len(got) == 0 || got[0] != tt.field {
				t.Errorf("fields = %v, want %s first; error: %v", got, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field+":") {
				t.Errorf("message %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestDefaultConfigNeedsIdentity(t *testing.T) {
	err := DefaultConfig().Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
	}
	if got, want := badFields(err), []string{"NodeID", "DataDir", "BindAddr"}; !slices.Equal(got, want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
}

func TestDefaultConfigValues(t *testing.T) {
	c := DefaultConfig()
	if c.TrailingLogs != c.SnapshotThreshold*5/4 {
		t.Errorf("TrailingLogs = %d, want 1.25 x SnapshotThreshold %d", c.TrailingLogs, c.SnapshotThreshold)
	}
	if c.MaxAppendEntries != 32 || c.SnapshotThreshold != 8192 || c.LogCacheSize != 512 || !c.NoFreelistSync {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestRaftConfigTranslation(t *testing.T) {
	c := validTestConfig()
	rc := c.raftConfig(newHCLogAdapter(nil))
	if string(rc.LocalID) != c.NodeID {
		t.Errorf("LocalID = %q, want %q", rc.LocalID, c.NodeID)
	}
	if rc.PreVoteDisabled {
		t.Error("pre-vote is disabled")
	}
	if !rc.NoSnapshotRestoreOnStart {
		t.Error("NoSnapshotRestoreOnStart is false")
	}
	if rc.HeartbeatTimeout != c.HeartbeatTimeout || rc.ElectionTimeout != c.ElectionTimeout ||
		rc.LeaderLeaseTimeout != c.LeaderLeaseTimeout || rc.CommitTimeout != c.CommitTimeout ||
		rc.MaxAppendEntries != c.MaxAppendEntries || rc.SnapshotThreshold != c.SnapshotThreshold ||
		rc.SnapshotInterval != c.SnapshotInterval || rc.TrailingLogs != c.TrailingLogs {
		t.Errorf("raft config does not match: %+v", rc)
	}
	if rc.Logger == nil || rc.Logger.Name() != "raft" {
		t.Errorf("Logger = %v, want the slog adapter named raft", rc.Logger)
	}
}
