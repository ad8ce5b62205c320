//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// cliEnv runs the binary with args and the extra environment env, bounded
// by d, and returns its output and exit code.
func cliEnv(t *testing.T, ctx context.Context, d time.Duration, env []string, args ...string) cliResult {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(cctx, testcluster.Build(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(testcluster.CleanEnv(), env...)
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Run()
	r := cliResult{stdout: o.String(), stderr: e.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("factstr-node %s: %v", strings.Join(args, " "), err)
	}
	if cctx.Err() != nil {
		t.Fatalf("factstr-node %s did not finish within %v (stdout %q, stderr %q)", strings.Join(args, " "), d, r.stdout, r.stderr)
	}
	t.Logf("$ factstr-node %s   (exit %d, %v)\n%s%s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// oneLineErr fails unless r is a failure with exit code want whose stderr
// is exactly one line containing every string of contains.
func oneLineErr(t *testing.T, r cliResult, want int, contains ...string) {
	t.Helper()
	if r.code != want {
		t.Errorf("exit code %d; want %d", r.code, want)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("stderr has %d lines; want one:\n%s", n, r.stderr)
	}
	for _, s := range contains {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q does not contain %q", r.stderr, s)
		}
	}
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	p, err := freeport.Get(false)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// TestCLIHelp: --help on every command and subcommand exits 0 and shows
// the command's positional arguments on stdout; an unknown flag or command
// is one line with a suggestion, exit 2.
func TestCLIHelp(t *testing.T) {
	skipShort(t)
	ctx := testCtx(t, 2*time.Minute)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "factstr-node admin <command>"},
		{[]string{"-h"}, "factstr-node completion bash|zsh"},
		{[]string{"help"}, "factstr-node version"},
		{[]string{"help", "query"}, "Usage: factstr-node query"},
		{[]string{"serve", "--help"}, "--bootstrap-expect"},
		{[]string{"append", "--help"}, "--context-filter"},
		{[]string{"query", "--help"}, "--filter"},
		{[]string{"tail", "--help"}, "--durable"},
		{[]string{"status", "--help"}, "Usage: factstr-node status"},
		{[]string{"bench", "--help"}, "--workload"},
		{[]string{"version", "--help"}, "Usage: factstr-node version"},
		{[]string{"completion", "--help"}, "Usage: factstr-node completion bash|zsh"},
		{[]string{"admin", "--help"}, "snapshot save <file>"},
		{[]string{"admin", "-h"}, "remove <node-id>"},
		{[]string{"admin", "help"}, "join <gossip-addr>"},
		{[]string{"admin", "status", "--help"}, "Usage: factstr-node admin status"},
		{[]string{"admin", "members", "--help"}, "Usage: factstr-node admin members"},
		{[]string{"admin", "join", "--help"}, "Usage: factstr-node admin join <gossip-addr>"},
		{[]string{"admin", "leave", "--help"}, "Usage: factstr-node admin leave"},
		{[]string{"admin", "remove", "--help"}, "Usage: factstr-node admin remove <node-id>"},
		{[]string{"admin", "transfer-leadership", "--help"}, "Usage: factstr-node admin transfer-leadership [node-id]"},
		{[]string{"admin", "snapshot", "--help"}, "save|restore <file>"},
		{[]string{"admin", "snapshot", "save", "--help"}, "Usage: factstr-node admin snapshot save <file>"},
		{[]string{"admin", "snapshot", "restore", "-h"}, "Usage: factstr-node admin snapshot restore <file>"},
		{[]string{"admin", "recover", "--help"}, "--peers"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := cliEnv(t, ctx, 30*time.Second, nil, tc.args...)
			if r.code != 0 {
				t.Errorf("exit code %d; want 0 (stderr %q)", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.want) {
				t.Errorf("stdout does not contain %q:\n%s", tc.want, r.stdout)
			}
		})
	}
	for _, tc := range []struct {
		args     []string
		contains []string
	}{
		{[]string{"query", "--adr", "127.0.0.1:7400"}, []string{"unknown flag --adr", "did you mean --addr?"}},
		{[]string{"append", "--payloud", "{}"}, []string{"unknown flag --payloud", "did you mean --payload?"}},
		{[]string{"admin", "status", "--jsn"}, []string{"unknown flag --jsn", "did you mean --json?"}},
		{[]string{"query", "--timeout", "soon"}, []string{`invalid value "soon" for flag --timeout`}},
		{[]string{"quer"}, []string{`unknown command "quer"`, "did you mean query?"}},
		{[]string{"admin", "membrs"}, []string{`unknown admin command "membrs"`, "did you mean members?"}},
		{[]string{"admin", "snapshot", "take", "x"}, []string{`snapshot takes save <file> or restore <file>, not "take"`}},
		{[]string{"completion", "fish"}, []string{`unknown shell "fish"`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := cliEnv(t, ctx, 30*time.Second, nil, tc.args...)
			oneLineErr(t, r, 2, tc.contains...)
		})
	}
}

// TestCLIVersionAndCompletion: version names the module version, commit and
// Go version; the bash completion script completes commands, admin
// subcommands and flags when bash runs it.
func TestCLIVersionAndCompletion(t *testing.T) {
	skipShort(t)
	ctx := testCtx(t, 2*time.Minute)
	r := cliEnv(t, ctx, 30*time.Second, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "factstr-node ") || !strings.Contains(r.stdout, "\ncommit ") || !strings.Contains(r.stdout, "\ngo1.") {
		t.Errorf("version: exit %d, printed %q; want factstr-node <version>, commit <hash>, go<version>", r.code, r.stdout)
	}
	r = cliEnv(t, ctx, 30*time.Second, nil, "version", "--json")
	var v struct{ Version, Commit, Go string }
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("version --json printed %q (%v)", r.stdout, err)
	}
	z := cliEnv(t, ctx, 30*time.Second, nil, "completion", "zsh")
	if z.code != 0 || !strings.HasPrefix(z.stdout, "#compdef factstr-node\n") || !strings.Contains(z.stdout, "complete -F _factstr_node factstr-node") {
		t.Errorf("completion zsh: exit %d, script starts %.80q", z.code, z.stdout)
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed: the completion script is not run")
	}
	r = cliEnv(t, ctx, 30*time.Second, nil, "completion", "bash")
	script := filepath.Join(t.TempDir(), "factstr-node.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // the words typed; the last one is being completed
		want string
	}{
		{"factstr-node qu", "query"},
		{"factstr-node admin sn", "snapshot"},
		{"factstr-node admin snapshot re", "restore"},
		{"factstr-node admin snapshot save --ad", "--addr"},
		{"factstr-node --addr 127.0.0.1:7400 query --fil", "--filter"},
		{"factstr-node append --if", "--if-version"},
		{"factstr-node serve --raft-t", "--raft-tls"},
		{"factstr-node completion z", "zsh"},
	} {
		words := strings.Fields(tc.line)
		if strings.HasSuffix(tc.line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, fmt.Sprintf("%q", w))
		}
		prog := fmt.Sprintf("source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _factstr_node; echo \"${COMPREPLY[*]}\"",
			script, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.CommandContext(ctx, bash, "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", tc.line, err, out)
		}
		if got := strings.Fields(string(out)); len(got) != 1 || got[0] != tc.want {
			t.Errorf("completing %q offered %q; want exactly %q", tc.line, got, tc.want)
		}
	}
}

// TestCLIFailsFast: against addresses where no node listens every client
// command fails within seconds, with the hint, not after --timeout; an
// address without a port is refused.
func TestCLIFailsFast(t *testing.T) {
	skipShort(t)
	ctx := testCtx(t, 2*time.Minute)
	a, b := deadAddr(t), deadAddr(t)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"query", "--addr", a}},
		{nil, []string{"append", "--addr", a + "," + b, "--type", "T", "--payload", "{}"}},
		{nil, []string{"status", "--addr", a + "," + b}},
		{[]string{"FACTSTR_ADDR=" + a + "," + b}, []string{"admin", "members"}},
		{[]string{"FACTSTR_ADDR=" + a}, []string{"admin", "snapshot", "save", "backup.snap"}},
		{nil, []string{"tail", "--addr", a}},
		{nil, []string{"bench", "--addr", a, "--duration", "2s"}},
	} {
		t.Run(strings.Join(append(tc.env, tc.args...), " "), func(t *testing.T) {
			r := cliEnv(t, ctx, 30*time.Second, tc.env, tc.args...)
			oneLineErr(t, r, 1, "no node answers at "+a+" (connection refused)", "is `factstr-node serve` running? check --addr / FACTSTR_ADDR")
			if r.took > 10*time.Second {
				t.Errorf("took %v; want a fast failure (the default --timeout is 30s)", r.took)
			}
		})
	}
	for _, args := range [][]string{
		{"query", "--addr", "127.0.0.1"},
		{"status", "--addr", "127.0.0.1:7400,localhost"},
		{"admin", "members", "--addr", "127.0.0.1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := cliEnv(t, ctx, 30*time.Second, nil, args...)
			oneLineErr(t, r, 2, "is not host:port")
		})
	}
}

// TestCLICluster drives one 3-node cluster through the binary: refused
// footguns write nothing, append --if-version, multi-filter queries, a
// durable tail that resumes, admin join of a fourth node, status and admin
// commands with the first address down, and bench exiting 1 when no
// operation succeeds.
func TestCLICluster(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 5*time.Minute)
	all := strings.Join(c.Addrs(), ",")
	env := []string{"FACTSTR_ADDR=" + all}
	run := func(t *testing.T, args ...string) cliResult {
		t.Helper()
		return cliEnv(t, ctx, 60*time.Second, env, args...)
	}
	ok := func(t *testing.T, args ...string) string {
		t.Helper()
		r := run(t, args...)
		if r.code != 0 {
			t.Fatalf("factstr-node %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	head := func(t *testing.T) uint64 {
		t.Helper()
		var q struct {
			Ver uint64 `json:"current_context_version"`
		}
		if err := json.Unmarshal([]byte(ok(t, "query", "--json")), &q); err != nil {
			t.Fatal(err)
		}
		return q.Ver
	}

	t.Run("footguns refused", func(t *testing.T) {
		for _, tc := range []struct {
			args     []string
			contains string
		}{
			{[]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"1A"}`, "--context-type", "seat-reserved"}, "need --if-version N"},
			{[]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"1A"}`, "--context-where", `{"seat":"1A"}`}, "need --if-version N"},
			{[]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"1A"}`, "--context-filter", `{"types":["seat-reserved"]}`}, "need --if-version N"},
			{[]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"1A"}`, "--if-version", "-5", "--context-type", "seat-reserved"}, "a context version is 0 or more"},
			{[]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"1A"}`, "--if-version", "1.5"}, "want a whole number"},
			{[]string{"append", "--type", "a", "--type", "b", "--payload", "{}"}, "one --payload per --type"},
			{[]string{"query", "--where", "[1,2]"}, "want a JSON object"},
			{[]string{"query", "--where", `"12A"`}, "want a JSON object"},
			{[]string{"tail", "--where", "null"}, "want a JSON object"},
			{[]string{"append", "--type", "a", "--payload", "{}", "--if-version", "0", "--context-where", "[]"}, "want a JSON object"},
			{[]string{"query", "--filter", `{"types":"a"}`}, "--filter"},
			{[]string{"query", "--filter", `{"where":[1]}`}, "want a JSON object"},
			{[]string{"query", "--filter", `{"type":["a"]}`}, `unknown field "type"`},
			{[]string{"query", "--filter", `{"types":["a"]}`, "--type", "b"}, "give either --filter or --type/--where"},
		} {
			t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
				oneLineErr(t, run(t, tc.args...), 2, tc.contains)
			})
		}
		if h := head(t); h != 0 {
			t.Fatalf("the log holds %d events after refused commands; want none", h)
		}
	})

	t.Run("append --if-version", func(t *testing.T) {
		ctxArgs := []string{"--context-type", "seat-reserved", "--context-where", `{"seat":"12A"}`}
		out := ok(t, append([]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"12A","user":"ann"}`, "--if-version", "0"}, ctxArgs...)...)
		if !strings.Contains(out, "appended 1 event(s): sequence 1..1") {
			t.Errorf("printed %q", out)
		}
		r := run(t, append([]string{"append", "--type", "seat-reserved", "--payload", `{"seat":"12A","user":"bob"}`, "--if-version", "0"}, ctxArgs...)...)
		oneLineErr(t, r, 1, "conflict: the context is at version 1, not 0; nothing was appended")
		r = run(t, append([]string{"append", "--json", "--type", "seat-reserved", "--payload", `{"seat":"12A","user":"bob"}`, "--if-version", "0"}, ctxArgs...)...)
		if r.code != 1 || strings.TrimSpace(r.stdout) != `{"actual":1,"conflict":true,"expected":0}` {
			t.Errorf("--json conflict: exit %d, stdout %q", r.code, r.stdout)
		}
		// The same context as one --context-filter, at its current version.
		out = ok(t, "append", "--type", "seat-released", "--payload", `{"seat":"12A","user":"ann"}`, "--if-version", "1",
			"--context-filter", `{"types":["seat-reserved","seat-released"],"where":{"seat":"12A"}}`)
		if !strings.Contains(out, "sequence 2..2") {
			t.Errorf("printed %q", out)
		}
		if h := head(t); h != 2 {
			t.Fatalf("head %d; want 2 (two appends, conflicts appended nothing)", h)
		}
	})

	t.Run("multi-filter query", func(t *testing.T) {
		ok(t, "append", "--type", "order-placed", "--payload", `{"order":7}`, "--type", "invoice-issued", "--payload", `{"order":7,"amount":240}`,
			"--type", "invoice-issued", "--payload", `{"order":8,"amount":80}`) // 3..5
		seqs := func(t *testing.T, args ...string) (got []uint64, version uint64) {
			t.Helper()
			var q struct {
				Events []tailRecord `json:"events"`
				Ver    uint64       `json:"current_context_version"`
			}
			if err := json.Unmarshal([]byte(ok(t, append([]string{"query", "--json"}, args...)...)), &q); err != nil {
				t.Fatal(err)
			}
			for _, e := range q.Events {
				got = append(got, e.Seq)
			}
			return got, q.Ver
		}
		for _, tc := range []struct {
			name    string
			args    []string
			want    []uint64
			version uint64
		}{
			{"OR of two filters", []string{"--filter", `{"types":["seat-released"]}`, "--filter", `{"where":{"order":8}}`}, []uint64{2, 5}, 5},
			{"where list: any predicate", []string{"--filter", `{"types":["invoice-issued","order-placed"],"where":[{"order":7},{"amount":80}]}`}, []uint64{3, 4, 5}, 5},
			{"empty types match nothing", []string{"--filter", `{"types":[]}`}, nil, 0},
			{"empty where matches nothing", []string{"--filter", `{"where":[]}`}, nil, 0},
			{"missing keys match everything", []string{"--filter", `{}`}, []uint64{1, 2, 3, 4, 5}, 5},
			{"an empty filter ORed with a real one", []string{"--filter", `{"types":[]}`, "--filter", `{"types":["order-placed"]}`}, []uint64{3}, 3},
			{"--after narrows rows, not the version", []string{"--filter", `{"where":{"order":7}}`, "--after", "3"}, []uint64{4}, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, v := seqs(t, tc.args...)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) || v != tc.version {
					t.Errorf("events %v, context version %d; want %v, %d", got, v, tc.want, tc.version)
				}
			})
		}
	})

	t.Run("tail --durable resumes", func(t *testing.T) {
		billing := []string{"tail", "--durable", "billing", "--type", "invoice-issued,payment-received"}
		tl := startTail(t, ctx, env, billing...)
		tl.wantSeqs(t, 4, 5) // the replay
		if _, found := tl.out.Wait(10*time.Second, "following; Ctrl-C to stop"); !found {
			t.Fatal("tail did not print 'following'")
		}
		ok(t, "append", "--type", "payment-received", "--payload", `{"order":7,"amount":240}`) // 6
		tl.wantSeqs(t, 4, 5, 6)
		tl.stop(t)
		ok(t, "append", "--type", "payment-received", "--payload", `{"order":8,"amount":80}`) // 7
		ok(t, "append", "--type", "seat-reserved", "--payload", `{"seat":"14C"}`)             // 8, not billing
		tl = startTail(t, ctx, env, billing...)
		tl.wantSeqs(t, 7)
		tl.stop(t)
		// A durable name keeps its query.
		r := run(t, "tail", "--durable", "billing", "--type", "invoice-issued")
		oneLineErr(t, r, 1, "different query")
	})

	var n4 *extraNode
	outer := t
	t.Run("admin join", func(t *testing.T) {
		n4 = startExtraNode(outer, c.Dir(), "n4", "--bootstrap-expect", "0") // runs until the whole test ends
		waitFor(t, 30*time.Second, func() bool {
			conn, err := net.DialTimeout("tcp", n4.gossipAddr, time.Second)
			if err == nil {
				conn.Close()
			}
			return err == nil
		}, func() string { return "n4 to listen on its gossip address " + n4.gossipAddr })
		r := run(t, "admin", "join", n4.gossipAddr)
		if r.code != 0 || !strings.Contains(r.stdout, "contacted 1 node(s)") {
			t.Fatalf("admin join %s: exit %d, %q %q", n4.gossipAddr, r.code, r.stdout, r.stderr)
		}
		var last string
		waitFor(t, time.Minute, func() bool {
			var m struct {
				Members []struct{ ID, Suffrage string }
			}
			out := run(t, "admin", "members", "--json").stdout
			last = out
			if json.Unmarshal([]byte(out), &m) != nil {
				return false
			}
			for _, x := range m.Members {
				if x.ID == "n4" && x.Suffrage == "voter" {
					return true
				}
			}
			return false
		}, func() string { return "n4 to become a voter; last admin members --json: " + last })
		// The new node serves the log through the CLI.
		out := cliEnv(t, ctx, time.Minute, nil, "query", "--addr", n4.grpcAddr, "--local", "--min-seq", "8", "--type", "payment-received")
		if out.code != 0 || !strings.Contains(out.stdout, "2 event(s)") {
			t.Errorf("query on n4: exit %d, %q %q", out.code, out.stdout, out.stderr)
		}
	})

	t.Run("status and admin fail over with the first address down", func(t *testing.T) {
		first := c.Node(0)
		if err := first.Kill(); err != nil {
			t.Fatal(err)
		}
		ordered := strings.Join(c.Addrs(), ",") // the dead node's address first
		if !strings.HasPrefix(ordered, first.Addr()) {
			t.Fatalf("addresses %s do not start with the killed node's %s", ordered, first.Addr())
		}
		for _, args := range [][]string{
			{"status"},
			{"admin", "status", "--json"},
			{"admin", "members"},
			{"admin", "snapshot", "save", filepath.Join(t.TempDir(), "backup.snap")},
			{"query", "--type", "seat-reserved"},
		} {
			var r cliResult
			waitFor(t, time.Minute, func() bool {
				r = cliEnv(t, ctx, time.Minute, nil, append(args, "--addr", ordered)...)
				return r.code == 0
			}, func() string {
				return fmt.Sprintf("factstr-node %s with %s down to succeed; last exit %d: %s", strings.Join(args, " "), first.Addr(), r.code, r.stderr)
			})
		}
	})

	t.Run("bench exits 1 when nothing succeeds", func(t *testing.T) {
		// Only n4 runs, one voter of four: no quorum, every append fails
		// while the node answers.
		if n4 == nil {
			t.Skip("admin join failed: no n4")
		}
		for _, i := range []int{1, 2} {
			if err := c.Node(i).Kill(); err != nil {
				t.Fatal(err)
			}
		}
		r := cliEnv(t, ctx, 2*time.Minute, nil, "bench", "--addr", n4.grpcAddr, "--duration", "3s", "--warmup", "0",
			"--concurrency", "2", "--connections", "1", "--quiet")
		oneLineErr(t, r, 1, "no operation succeeded")
		// The report counts the failed operations, not "errors none".
		if !strings.Contains(r.stdout, "unanswered_at_end") {
			t.Errorf("bench report does not count the unanswered operations:\n%s", r.stdout)
		}
	})
}

// tailProc is a `factstr-node tail` subprocess.
type tailProc struct {
	cmd  *exec.Cmd
	out  *lines // stdout and stderr, in order
	done chan error
}

func startTail(t *testing.T, ctx context.Context, env []string, args ...string) *tailProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, testcluster.Build(t), args...)
	cmd.Env = append(testcluster.CleanEnv(), env...)
	cmd.Dir = t.TempDir()
	tp := &tailProc{cmd: cmd, out: newLines(nil), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = tp.out, tp.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { tp.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-tp.done
	})
	return tp
}

// wantSeqs waits until the tail printed exactly the records seqs (in order)
// and fails on any other record.
func (tp *tailProc) wantSeqs(t *testing.T, seqs ...uint64) {
	t.Helper()
	var got []uint64
	collect := func() []uint64 {
		got = got[:0]
		for _, ln := range tp.out.Lines() {
			var r tailRecord
			if json.Unmarshal([]byte(ln), &r) == nil && r.Seq > 0 {
				got = append(got, r.Seq)
			}
		}
		return got
	}
	waitFor(t, 30*time.Second, func() bool { return len(collect()) >= len(seqs) }, func() string {
		return fmt.Sprintf("tail to print sequence numbers %v; printed %q", seqs, tp.out.Lines())
	})
	if fmt.Sprint(got) != fmt.Sprint(seqs) {
		t.Fatalf("tail printed sequence numbers %v; want %v", got, seqs)
	}
}

// stop interrupts the tail as Ctrl-C would and waits for a clean exit.
func (tp *tailProc) stop(t *testing.T) {
	t.Helper()
	if err := tp.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tp.done:
		tp.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("tail exited with %v after SIGINT; want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tail did not exit within 30s of SIGINT")
	}
}

// TestCLITLSHint: against a node that serves mutual TLS, a command without
// the TLS flags fails at once and points at them, not at whether the node
// runs.
func TestCLITLSHint(t *testing.T) {
	skipShort(t)
	pki := newPKI(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 1, NoWait: true,
		Args: []string{"--tls-cert", pki.nodeCert, "--tls-key", pki.nodeKey, "--tls-ca", pki.caFile}})
	ctx := testCtx(t, 2*time.Minute)
	addr := c.Node(0).Addr()
	waitFor(t, 30*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, func() string { return "the TLS node to listen on " + addr })
	r := cliEnv(t, ctx, 30*time.Second, nil, "status", "--addr", addr)
	oneLineErr(t, r, 1, "no node answers at "+addr, "check --tls-ca, --tls-cert, --tls-key")
	r = cliEnv(t, ctx, 30*time.Second, nil, "status", "--addr", addr, "--tls-ca", pki.caFile)
	oneLineErr(t, r, 1, "no node answers at "+addr, "check --tls-ca, --tls-cert, --tls-key")
}
