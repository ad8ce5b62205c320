package runner

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCheckSchedule(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sched   []string
		wantErr string
	}{
		{name: "empty"},
		{name: "known", sched: []string{"partition-leader", "kill", "latency", "power-loss"}},
		{name: "unknown named", sched: []string{"kill", "kill-follower"}, wantErr: `unknown nemesis "kill-follower"`},
		{name: "empty name from a trailing comma", sched: strings.Split("kill,", ","), wantErr: `unknown nemesis ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSchedule(tc.sched)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err %v, want %s", err, tc.wantErr)
			}
		})
	}
}

func TestScheduleNeeds(t *testing.T) {
	for _, tc := range []struct {
		sched       []string
		proxy, lazy bool
	}{
		{nil, false, false},
		{[]string{"kill", "pause"}, false, false},
		{[]string{"kill", "latency"}, true, false},
		{[]string{"power-loss"}, false, true},
		{[]string{"power-loss-all", "latency"}, true, true},
	} {
		if got := NeedsRaftProxy(tc.sched); got != tc.proxy {
			t.Errorf("NeedsRaftProxy(%v) = %v", tc.sched, got)
		}
		if got := NeedsLazyFS(tc.sched); got != tc.lazy {
			t.Errorf("NeedsLazyFS(%v) = %v", tc.sched, got)
		}
	}
}

// TestEveryNemesisStarts keeps Nemeses (what -nemeses accepts) and the
// cases of startFault (what a run can start) the same set: a name listed
// but not handled would pass the command line and fail mid-run.
func TestEveryNemesisStarts(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "nemesis.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	handled := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "startFault" {
			return true
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
						s, _ := strconv.Unquote(bl.Value)
						handled[s] = true
					}
				}
			}
			return true
		})
		return false
	})
	if len(handled) == 0 {
		t.Fatal("no cases found in startFault")
	}
	for k := range Nemeses {
		if !handled[k] {
			t.Errorf("nemesis %q is listed but startFault has no case for it", k)
		}
	}
	for k := range handled {
		if _, ok := Nemeses[k]; !ok {
			t.Errorf("startFault handles %q, which Nemeses does not list", k)
		}
	}
}

func TestStartFaultUnknown(t *testing.T) {
	c := &cluster{cfg: Config{Nodes: 3}}
	f, err := c.startFault(context.Background(), "flood", rand.New(rand.NewSource(1)))
	if f != nil || err == nil || !strings.Contains(err.Error(), `unknown nemesis "flood"`) {
		t.Fatalf("startFault(flood) = %v, %v", f, err)
	}
}

func TestOthers(t *testing.T) {
	for _, tc := range []struct {
		n, i int
		want []int
	}{
		{3, 1, []int{2, 3}},
		{3, 3, []int{1, 2}},
		{5, 2, []int{1, 3, 4, 5}},
		{1, 1, nil},
	} {
		if got := others(tc.n, tc.i); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("others(%d, %d) = %v, want %v", tc.n, tc.i, got, tc.want)
		}
	}
}

// drops reports whether node a drops packets from b under g.
func drops(g map[int][]int, a, b int) bool {
	for _, p := range g[a] {
		if p == b {
			return true
		}
	}
	return false
}

// connected reports whether a and b exchange packets both ways under g.
func connected(g map[int][]int, a, b int) bool { return !drops(g, a, b) && !drops(g, b, a) }

func TestIsolation(t *testing.T) {
	for _, n := range []int{3, 5} {
		for i := 1; i <= n; i++ {
			g := isolation(n, i)
			for a := 1; a <= n; a++ {
				for b := 1; b <= n; b++ {
					if a == b {
						if drops(g, a, a) {
							t.Errorf("n=%d isolate %d: node %d drops itself", n, i, a)
						}
						continue
					}
					// both directions: a one-way cut is partition-oneway
					cut := a == i || b == i
					if both := drops(g, a, b) && drops(g, b, a); cut != both || !cut && !connected(g, a, b) {
						t.Errorf("n=%d isolate %d: %d<->%d drop both ways=%v, want %v", n, i, a, b, both, cut)
					}
				}
			}
		}
	}
}

func TestHalves(t *testing.T) {
	for _, tc := range []struct {
		n        int
		perm     []int
		minority []int
		desc     string
	}{
		{3, []int{1, 0, 2}, []int{2}, "partition {n2} | {n1,n3}"},
		{5, []int{4, 0, 2, 3, 1}, []int{1, 5}, "partition {n1,n5} | {n2,n3,n4}"},
		{4, []int{3, 2, 1, 0}, []int{4}, "partition {n4} | {n1,n2,n3}"},
	} {
		g, desc := halves(tc.n, tc.perm)
		if desc != tc.desc {
			t.Errorf("halves(%d, %v) desc %q, want %q", tc.n, tc.perm, desc, tc.desc)
		}
		in := map[int]bool{}
		for _, m := range tc.minority {
			in[m] = true
		}
		for a := 1; a <= tc.n; a++ {
			for b := 1; b <= tc.n; b++ {
				if same := in[a] == in[b]; same != connected(g, a, b) || !same && !(drops(g, a, b) && drops(g, b, a)) {
					t.Errorf("halves(%d, %v): %d<->%d connected=%v, same side=%v", tc.n, tc.perm, a, b, connected(g, a, b), same)
				}
			}
		}
	}
	// Any permutation leaves a strict majority together.
	rng := rand.New(rand.NewSource(7))
	for k := 0; k < 50; k++ {
		n := 3 + rng.Intn(5)
		g, _ := halves(n, rng.Perm(n))
		cut := 0
		for i := 1; i <= n; i++ {
			if len(g[i]) > n/2 {
				cut++
			}
		}
		if cut > (n-1)/2 || cut == 0 {
			t.Fatalf("n=%d: %d nodes on the minority side (%v)", n, cut, g)
		}
	}
}

func TestBridge(t *testing.T) {
	for _, tc := range []struct {
		n       int
		perm    []int
		br      int
		a, b    []int
		wantStr string
	}{
		{3, []int{1, 0, 2}, 2, []int{1}, []int{3}, "bridge: n2 sees [1] and [3], which do not see each other"},
		{5, []int{0, 4, 1, 3, 2}, 1, []int{2, 3}, []int{4, 5}, "bridge: n1 sees [2 3] and [4 5], which do not see each other"},
	} {
		g, desc := bridge(tc.n, tc.perm)
		if desc != tc.wantStr {
			t.Errorf("desc %q, want %q", desc, tc.wantStr)
		}
		side := map[int]int{}
		for _, x := range tc.a {
			side[x] = 1
		}
		for _, x := range tc.b {
			side[x] = 2
		}
		for x := 1; x <= tc.n; x++ {
			for y := 1; y <= tc.n; y++ {
				want := x == tc.br || y == tc.br || side[x] == side[y]
				if connected(g, x, y) != want {
					t.Errorf("bridge(%d, %v): %d<->%d connected=%v, want %v", tc.n, tc.perm, x, y, !want, want)
				}
			}
		}
	}
}

func TestGrudgeRules(t *testing.T) {
	got := grudgeRules(map[int][]int{1: {2, 3}, 2: {1}, 3: nil})
	want := map[int][]string{
		1: {"ip saddr { 10.77.0.12, 10.77.0.13 } drop"},
		2: {"ip saddr { 10.77.0.11 } drop"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grudgeRules = %v, want %v", got, want)
	}
	if want := "ip saddr 10.77.0.0/24 ip saddr != 10.77.0.1 numgen random mod 100 < 25 drop"; lossRule != want {
		t.Fatalf("lossRule %q, want %q (peers only, never the clients' address)", lossRule, want)
	}
}

func TestAddresses(t *testing.T) {
	if nsName(2) != "fsj-n2" || nodeIP(2) != "10.77.0.12" || grpcAddr(3) != "10.77.0.13:7400" || vethName(1) != "fsj-v1" {
		t.Fatalf("addresses: %s %s %s %s", nsName(2), nodeIP(2), grpcAddr(3), vethName(1))
	}
	c := &cluster{cfg: Config{Nodes: 3}}
	if got := c.nodeExtraArgs(2); !reflect.DeepEqual(got, []string{"--debug-clock-offset-file", "/tmp/factstr-jepsen/data/n2.clock-offset"}) {
		t.Errorf("extra args without proxies: %v", got)
	}
	c.cfg.RaftProxy = true
	if got := c.nodeExtraArgs(2); len(got) != 4 || got[2] != "--raft-advertise-addr" || got[3] != "10.77.0.12:7411" {
		t.Errorf("extra args with proxies: %v", got)
	}
	sp := proxySpec(1)
	if sp.Listen != "10.77.0.11:7411" || sp.Target != "10.77.0.11:7401" || sp.Control != "10.77.0.11:7412" {
		t.Errorf("proxySpec(1) = %+v", sp)
	}
}

func TestIsProxyCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"/usr/bin/jepsen\x00-proxy\x00listen=10.77.0.11:7411,target=10.77.0.11:7401\x00", true},
		{"/usr/bin/jepsen\x00-proxy\x00listen=10.78.0.11:7411\x00", false}, // not our subnet
		{"/usr/bin/jepsen\x00-mode\x00smoke\x00", false},                   // the runner itself
		{"sh\x00-c\x00-proxy listen=10.77.0.11:7411\x00", false},           // one argument, not two
		{"/usr/bin/other\x00-proxy\x00listen=10.77.0.255:9\x00", true},     // any binary started that way
		{"", false},
	} {
		if got := isProxyCmdline([]byte(tc.cmd)); got != tc.want {
			t.Errorf("isProxyCmdline(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// TestFaultsThatCannotStart: a fault whose preconditions the run does not
// meet returns an error and no fault (the nemesis records it as failed and
// has nothing to heal), before touching any node.
func TestFaultsThatCannotStart(t *testing.T) {
	for _, kind := range []string{"latency", "power-loss", "power-loss-all", "membership", "membership-leader", "membership-quick"} {
		t.Run(kind, func(t *testing.T) {
			// No proxies, no lazyfs mounts, and no node to ask for a leader.
			c := &cluster{cfg: Config{Nodes: 0}}
			f, err := c.startFault(context.Background(), kind, rand.New(rand.NewSource(1)))
			if f != nil || err == nil {
				t.Fatalf("startFault(%s) = %v, %v; want an error and no fault", kind, f, err)
			}
		})
	}
}
