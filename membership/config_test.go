package membership

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// configFields lists the Field of every ConfigError in err.
func configFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ce, ok := e.(*ConfigError); ok {
			out = append(out, ce.Field)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		walk(errors.Unwrap(e))
	}
	walk(err)
	return out
}

func validConfig() Config {
	return Config{
		BindAddr: "0.0.0.0:7946",
		Join:     []string{"factstr-headless.ns.svc:7946"},
		Meta: Meta{
			NodeID:          "factstr-0",
			RaftAddr:        "factstr-0.factstr-headless.ns.svc:7000",
			GRPCAddr:        "factstr-0.factstr-headless.ns.svc:7001",
			Incarnation:     "0123456789abcdef0123456789abcdef",
			Version:         "v0.1.0",
			BootstrapExpect: 3,
		},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		fields []string // nil: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"valid port 0 bind", func(c *Config) { c.BindAddr = "127.0.0.1:0" }, nil},
		{"valid empty bind host", func(c *Config) { c.BindAddr = ":7946" }, nil},
		{"valid advertise DNS name", func(c *Config) { c.AdvertiseAddr = "factstr-0.factstr-headless.ns.svc:7946" }, nil},
		{"valid IPv6 seeds", func(c *Config) { c.Join = []string{"[fd00::1]:7946"} }, nil},
		{"valid secret key", func(c *Config) { c.SecretKey = make([]byte, 32) }, nil},
		{"valid no seeds", func(c *Config) { c.Join = nil }, nil},

		{"bind missing", func(c *Config) { c.BindAddr = "" }, []string{"BindAddr"}},
		{"bind no port", func(c *Config) { c.BindAddr = "0.0.0.0" }, []string{"BindAddr"}},
		{"bind bad port", func(c *Config) { c.BindAddr = "0.0.0.0:99999" }, []string{"BindAddr"}},
		{"bind DNS name", func(c *Config) { c.BindAddr = "localhost:7946" }, []string{"BindAddr"}},
		{"bind IPv6 any without advertise", func(c *Config) { c.BindAddr = "[::]:7946" }, []string{"AdvertiseAddr"}},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0:7946" }, []string{"AdvertiseAddr"}},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, []string{"AdvertiseAddr"}},
		{"advertise with bind port 0", func(c *Config) {
			c.BindAddr = "0.0.0.0:0"
			c.AdvertiseAddr = "10.0.0.1:7946"
		}, []string{"AdvertiseAddr"}},
		{"seed without port", func(c *Config) { c.Join = []string{"ok:7946", "factstr-headless"} }, []string{"Join[1]"}},
		{"seed without host", func(c *Config) { c.Join = []string{":7946"} }, []string{"Join[0]"}},
		{"seed port 0", func(c *Config) { c.Join = []string{"seed:0"} }, []string{"Join[0]"}},
		{"negative retry", func(c *Config) { c.RetryInterval = -time.Second }, []string{"RetryInterval"}},
		{"negative tombstone", func(c *Config) { c.TombstoneTimeout = -time.Second }, []string{"TombstoneTimeout"}},
		{"bad secret key", func(c *Config) { c.SecretKey = []byte("short") }, []string{"SecretKey"}},
		{"node id missing", func(c *Config) { c.Meta.NodeID = "" }, []string{"Meta.NodeID"}},
		{"node id whitespace", func(c *Config) { c.Meta.NodeID = "factstr 0" }, []string{"Meta.NodeID"}},
		{"node id slash", func(c *Config) { c.Meta.NodeID = "ns/factstr-0" }, []string{"Meta.NodeID"}},
		{"raft addr missing", func(c *Config) { c.Meta.RaftAddr = "" }, []string{"Meta.RaftAddr"}},
		{"raft addr unspecified", func(c *Config) { c.Meta.RaftAddr = "0.0.0.0:7000" }, []string{"Meta.RaftAddr"}},
		{"grpc addr no port", func(c *Config) { c.Meta.GRPCAddr = "factstr-0" }, []string{"Meta.GRPCAddr"}},
		{"incarnation missing", func(c *Config) { c.Meta.Incarnation = "" }, []string{"Meta.Incarnation"}},
		{"negative expect", func(c *Config) { c.Meta.BootstrapExpect = -1 }, []string{"Meta.BootstrapExpect"}},
		{"meta too large", func(c *Config) { c.Meta.Version = strings.Repeat("v", 500) }, []string{"Meta"}},
		{"every problem reported", func(c *Config) {
			c.BindAddr = ""
			c.RetryInterval = -1
			c.Meta.NodeID = ""
		}, []string{"BindAddr", "RetryInterval", "Meta.NodeID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if got := configFields(err); !slices.Equal(got, tt.fields) {
				t.Fatalf("fields = %q, want %q (err: %v)", got, tt.fields, err)
			}
		})
	}
}

func TestMetaRoundTripAndSize(t *testing.T) {
	m := validConfig().Meta
	host := "factstr-12.factstr-headless.factstr-production.svc.cluster.local"
	m.NodeID = "factstr-12"
	m.RaftAddr = host + ":7000"
	m.GRPCAddr = host + ":7001"
	m.Version = "v1.23.4-rc.1+abcdef0"
	m.ClusterID = "5f2b0c1e-6a8f-4d1b-9f0e-3c2a1b0d9e8f"
	m.HasRaftState = true
	buf, err := encodeMeta(m, true)
	if err != nil {
		t.Fatal(err)
	}
	// A realistic Kubernetes meta must leave room to grow.
	if len(buf) > memberlist.MetaMaxSize*5/8 {
		t.Errorf("realistic meta encodes to %d bytes (%s); keep it well under %d", len(buf), buf, memberlist.MetaMaxSize)
	}
	got, leaving, err := decodeMeta(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got != m || !leaving {
		t.Fatalf("round trip: got %+v leaving=%v, want %+v leaving=true", got, leaving, m)
	}
	// A GRPCAddr on another host is sent in full.
	m.GRPCAddr = "10.0.0.7:7001"
	buf, _ = encodeMeta(m, false)
	if got, _, _ := decodeMeta(buf); got != m {
		t.Fatalf("round trip with distinct hosts: got %+v, want %+v", got, m)
	}
	// Unknown keys from a newer version are ignored.
	if _, _, err := decodeMeta([]byte(`{"id":"x","future":42}`)); err != nil {
		t.Fatalf("unknown key: %v", err)
	}
	if _, _, err := decodeMeta([]byte("not json")); err == nil {
		t.Fatal("garbage meta decoded")
	}
}

func TestDecideBootstrap(t *testing.T) {
	now := time.Now()
	mb := func(id string, expect int, state State, mod ...func(*Meta)) Member {
		m := Member{Meta: Meta{NodeID: id, BootstrapExpect: expect, Incarnation: "i"}, Addr: id + ":7946", State: state, Since: now}
		for _, f := range mod {
			f(&m.Meta)
		}
		return m
	}
	withCluster := func(m *Meta) { m.ClusterID = "c1" }
	withState := func(m *Meta) { m.HasRaftState = true }

	tests := []struct {
		name    string
		members []Member
		servers []string // decided
		noBoot  bool     // ErrNoBootstrap
		wait    bool     // undecided
		problem bool     // a misconfiguration is reported
	}{
		{"all three", []Member{mb("c", 3, StateAlive), mb("a", 3, StateAlive), mb("b", 3, StateAlive)}, []string{"a", "b", "c"}, false, false, false},
		{"two of three", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive)}, nil, false, true, false},
		{"dead peer does not count", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateDead)}, nil, false, true, false},
		{"left peer does not count", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateLeft)}, nil, false, true, false},
		{"non-bootstrapping peers ignored", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateAlive), mb("x", 0, StateAlive)}, []string{"a", "b", "c"}, false, false, false},
		{"peer with cluster", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive, withCluster)}, nil, true, false, false},
		{"dead peer with cluster", []Member{mb("a", 3, StateAlive), mb("b", 3, StateDead, withCluster)}, nil, true, false, false},
		{"peer with raft state", []Member{mb("a", 3, StateAlive), mb("b", 0, StateAlive, withState), mb("c", 3, StateAlive), mb("d", 3, StateAlive)}, nil, true, false, false},
		{"self with raft state", []Member{mb("a", 3, StateAlive, withState), mb("b", 3, StateAlive), mb("c", 3, StateAlive)}, nil, true, false, false},
		{"mismatched expect", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateAlive), mb("d", 5, StateAlive)}, nil, false, true, true},
		{"dead mismatched expect ignored", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateAlive), mb("d", 5, StateDead)}, []string{"a", "b", "c"}, false, false, false},
		{"more than expect", []Member{mb("a", 3, StateAlive), mb("b", 3, StateAlive), mb("c", 3, StateAlive), mb("d", 3, StateAlive)}, nil, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decideBootstrap("a", 3, tt.members)
			var ids []string
			for _, s := range v.servers {
				ids = append(ids, s.Meta.NodeID)
			}
			switch {
			case tt.servers != nil:
				if !slices.Equal(ids, tt.servers) || v.err != nil {
					t.Fatalf("servers = %v, err = %v; want %v", ids, v.err, tt.servers)
				}
			case tt.noBoot:
				if !errors.Is(v.err, ErrNoBootstrap) {
					t.Fatalf("err = %v, servers = %v; want ErrNoBootstrap", v.err, ids)
				}
			case tt.wait:
				if v.err != nil || v.servers != nil || v.waiting == "" {
					t.Fatalf("verdict = %+v; want undecided", v)
				}
			}
			if got := len(v.problems) > 0; got != tt.problem {
				t.Fatalf("problems = %q; want problem=%v", v.problems, tt.problem)
			}
		})
	}
}

func TestParseStdLogLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5\n", slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Marking b as failed\n", slog.LevelInfo, "Marking b as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", slog.LevelWarn, "Refuting a suspect message"},
		{"[ERR] memberlist: Conflicting address for b\n", slog.LevelError, "Conflicting address for b"},
		{"[ERR] Failed to shutdown transport: x\n", slog.LevelError, "Failed to shutdown transport: x"},
		{"no prefix at all\n", slog.LevelInfo, "no prefix at all"},
		{"[weird] memberlist: x\n", slog.LevelInfo, "[weird] memberlist: x"},
	}
	for _, tt := range tests {
		level, msg := parseStdLogLine(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("parseStdLogLine(%q) = %v %q, want %v %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}

	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Printf("[DEBUG] memberlist: hidden")
	l.Printf("[WARN] memberlist: shown %d", 1)
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="shown 1"`) {
		t.Fatalf("adapter output:\n%s", out)
	}
}

func TestIncarnationFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // created on demand
	id1, err := IncarnationFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(id1) != 32 || strings.Trim(id1, "0123456789abcdef") != "" {
		t.Fatalf("incarnation %q is not 32 hex digits", id1)
	}
	id2, err := IncarnationFile(dir)
	if err != nil || id2 != id1 {
		t.Fatalf("second read = %q, %v; want %q", id2, err, id1)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != IncarnationFileName {
		t.Fatalf("data dir holds %v; want only %s (no temp files)", entries, IncarnationFileName)
	}

	// A wiped data directory is a new incarnation.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	id3, err := IncarnationFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id3 == id1 {
		t.Fatalf("wiped directory kept incarnation %q", id1)
	}

	// A corrupt file is an error, never silently replaced.
	if err := os.WriteFile(filepath.Join(dir, IncarnationFileName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := IncarnationFile(dir); err == nil {
		t.Fatal("corrupt incarnation file accepted")
	}

	if _, err := IncarnationFile(""); err == nil {
		t.Fatal("empty data dir accepted")
	}
}

func TestIncarnationFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	ids := make(chan string, n)
	for range n {
		go func() {
			id, err := IncarnationFile(dir)
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	first := <-ids
	for range n - 1 {
		if id := <-ids; id != first {
			t.Fatalf("concurrent callers got %q and %q", first, id)
		}
	}
}
