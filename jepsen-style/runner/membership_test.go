package runner

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

func TestMemberOp(t *testing.T) {
	errOther := errors.New("no leader")
	for _, tc := range []struct {
		name      string
		desc      string
		res       string
		err       error
		nemesis   string // completion type of the nemesis op
		check     string // completion type of the member_check op, "" for none
		wantFault string
	}{
		{"removal ok", "admin remove n2 (follower) sent to n3", "removed", nil, history.OK, "", "admin remove n2 (follower) sent to n3: removed"},
		{"removal failed", "admin remove n2 (follower) sent to n3", "gave up after 10s", errOther, history.Fail, "", "admin remove n2 (follower) sent to n3: gave up after 10s"},
		{"stayed out", "n2 stayed out of the configuration while it kept running", "leader n1's configuration is map[]", nil, history.OK, history.OK, "n2 stayed out of the configuration while it kept running: leader n1's configuration is map[]"},
		{"back too soon", "n2 stayed out of the configuration while it kept running", "leader n1 lists n2 as voter", errBackTooSoon, history.Fail, history.Fail, "n2 stayed out of the configuration while it kept running: leader n1 lists n2 as voter"},
		{"stayed out unknown", "n2 stayed out of the configuration while it kept running", "no leader to ask", errOther, history.Fail, "", ""},
		{"re-added", "re-add n2: stop, wipe", "n2 is a voter again", nil, history.OK, history.OK, ""},
		{"not re-added", "re-add n2: stop, wipe", "n2 not back", errNotReadded, history.Fail, history.Fail, ""},
		{"re-add step failed", "re-add n2: stop, wipe", "restart", errOther, history.Fail, "", ""},
		{"wrapped promise", "re-add n2: stop, wipe", "n2 not back", errors.Join(errOther, errNotReadded), history.Fail, history.Fail, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, _ := history.NewRecorder("")
			c := &cluster{cfg: Config{Nodes: 3}, rec: rec}
			err := c.memberOp(tc.desc, func() (string, error) { return tc.res, tc.err })
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("memberOp returned %v, want %v", err, tc.err)
			}
			var nem, chk *history.Op
			ops := history.Pair(rec.Entries())
			for i := range ops {
				switch ops[i].F {
				case history.FNemesis:
					nem = &ops[i]
				case history.FMemberCheck:
					chk = &ops[i]
				}
			}
			if nem == nil || nem.Type != tc.nemesis || nem.Args.Fault != tc.desc || nem.Result.Fault != tc.desc+": "+tc.res {
				t.Fatalf("nemesis op %+v, want %s with fault %q", nem, tc.nemesis, tc.desc+": "+tc.res)
			}
			if tc.wantFault != "" && nem.Result.Fault != tc.wantFault {
				t.Fatalf("fault %q, want %q", nem.Result.Fault, tc.wantFault)
			}
			switch {
			case tc.check == "" && chk != nil:
				t.Fatalf("member_check recorded for %q: %+v", tc.desc, chk)
			case tc.check != "" && (chk == nil || chk.Type != tc.check || chk.Result.Fault != tc.desc+": "+tc.res):
				t.Fatalf("member_check %+v, want %s", chk, tc.check)
			}
			if len(ops) != 1+btoi(tc.check != "") {
				t.Fatalf("%d ops recorded", len(ops))
			}
			if len(c.notes) != 1 {
				t.Fatalf("notes %v, want one", c.notes)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNodeArgs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		dir     string
		dropped []string
	}{
		{"separate value", []string{"serve", "--data-dir", "/d/n1", "--bootstrap-expect", "3", "--join", "a,b"}, "/d/n1", []string{"serve", "--data-dir", "/d/n1", "--join", "a,b"}},
		{"equals form", []string{"serve", "--data-dir=/d/n2", "--bootstrap-expect", "3"}, "/d/n2", []string{"serve", "--data-dir=/d/n2"}},
		{"no data dir", []string{"serve", "--join", "a"}, "", []string{"serve", "--join", "a"}},
		{"flag last without value", []string{"serve", "--data-dir"}, "", []string{"serve", "--data-dir"}},
		{"flag at the end", []string{"serve", "--bootstrap-expect"}, "", []string{"serve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &node{args: tc.args}
			if got := n.dataDir(); got != tc.dir {
				t.Errorf("dataDir = %q, want %q", got, tc.dir)
			}
			n.dropFlag("--bootstrap-expect")
			if !reflect.DeepEqual(n.args, tc.dropped) {
				t.Errorf("after dropFlag: %v, want %v", n.args, tc.dropped)
			}
		})
	}
}

func TestGossipFailed(t *testing.T) {
	dir := t.TempDir()
	logs := map[int]string{
		1: `time=1 level=INFO msg="member failed" member=n2 addr=x
time=2 level=INFO msg="member joined" member=n2 addr=x
time=3 level=INFO msg="member failed" member=n22 addr=x
`,
		2: `time=1 level=INFO msg="member failed" member=n2 addr=x
`, // the node's own log does not count
		3: `time=4 level=INFO msg="member failed" member=n2 addr=x
time=5 level=INFO msg="member failed" member=n3 addr=x
`,
	}
	c := &cluster{cfg: Config{Nodes: 4}}
	for i := 1; i <= 4; i++ {
		n := &node{i: i, logPath: filepath.Join(dir, "n"+string(rune('0'+i))+".log")} // n4 has no log yet
		if s, ok := logs[i]; ok {
			if err := os.WriteFile(n.logPath, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c.nodes = append(c.nodes, n)
	}
	for _, tc := range []struct{ i, want int }{{2, 2}, {3, 0}, {1, 0}} {
		if got := c.gossipFailed(tc.i); got != tc.want {
			t.Errorf("gossipFailed(n%d) = %d, want %d", tc.i, got, tc.want)
		}
	}
}

func TestWipeDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"raft/log.db", "fsm.db", "snapshots/1/meta.json"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := wipeDir(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the directory itself must stay (it may be a mount point): %v", err)
	}
	if len(ents) != 0 {
		t.Fatalf("%d entries left", len(ents))
	}
	if err := wipeDir(filepath.Join(dir, "absent")); err != nil {
		t.Fatalf("wipe of a missing directory: %v", err)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/factstr-jepsen/data/n1": "/tmp/factstr-jepsen/data/n1",
		`/tmp/with\040space`:          "/tmp/with space",
		`/a\011tab\134back`:           "/a\ttab\\back",
		`/trailing\04`:                `/trailing\04`, // too short to be an escape
		`/not\9999octal`:              `/not\9999octal`,
		`/x\040`:                      "/x ", // an escape may end the string
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip(err)
	}
	if got := mountsUnder("/"); !contains(got, "/") || !isMountPoint("/") {
		t.Fatalf("the root is not among the mounts under it: %v", got)
	}
	dir := t.TempDir()
	if got := mountsUnder(dir); len(got) != 0 || isMountPoint(dir) {
		t.Fatalf("mounts under a fresh directory: %v", got)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
