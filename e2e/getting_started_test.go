//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/testcluster"
)

// transcriptStep is one command of a documented transcript.
type transcriptStep struct {
	line int      // in the document
	kind string   // "run": a $ command; "bg": a command started in another terminal; "bgout": what the next bg command printed
	args []string // after ./bin/factstr-node
	want []string // the output shown
}

// parseTranscript reads the shell blocks of doc between the headings from
// and to: "$ ./bin/factstr-node ..." lines with the output below them,
// "./bin/factstr-node tail ..." lines without "$" (commands left running
// in other terminals), and plain blocks that follow those, which show what
// they printed.
func parseTranscript(t *testing.T, doc, from, to string) []transcriptStep {
	t.Helper()
	f, err := os.Open(doc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []transcriptStep
	in, fence, pendingBg := false, "", 0
	var cur *transcriptStep
	flush := func() {
		if cur != nil {
			steps = append(steps, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == from:
			in = true
			continue
		case line == to:
			in = false
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "```") {
			flush()
			if fence == "" {
				fence = "```" + strings.TrimPrefix(line, "```") + "|"
				if line == "```" && pendingBg > 0 {
					cur = &transcriptStep{line: n + 1, kind: "bgout"}
					pendingBg--
				}
			} else {
				fence = ""
			}
			continue
		}
		if fence == "" {
			continue
		}
		switch {
		case fence == "```sh|" && strings.HasPrefix(line, "$ ./bin/factstr-node "):
			flush()
			cur = &transcriptStep{line: n, kind: "run", args: shellWords(t, strings.TrimPrefix(line, "$ ./bin/factstr-node "))}
		case fence == "```sh|" && strings.HasPrefix(line, "./bin/factstr-node "):
			flush()
			args := shellWords(t, strings.TrimPrefix(line, "./bin/factstr-node "))
			if args[0] == "tail" {
				steps = append(steps, transcriptStep{line: n, kind: "bg", args: args})
				pendingBg++
			}
		case line == "":
			flush()
		case cur != nil:
			cur.want = append(cur.want, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return steps
}

// shellWords splits a command line as sh would for the quoting the
// documents use: words, '...' and "..." without escapes.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// normalize makes output comparable: timestamps differ from run to run.
func normalize(lines []string) string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.TrimRight(timestamp.ReplaceAllString(l, "<time>"), " "))
	}
	return strings.Join(out, "\n")
}

// TestGettingStartedTranscript runs section 1 of docs/getting-started.md
// (one node: append, query, conditional appends, batches, idempotency,
// invalid input, live, durable and catch-up tails) through the built binary
// against a node of its own on ports the harness picks, and compares every
// output with the document's, timestamps aside.
func TestGettingStartedTranscript(t *testing.T) {
	skipShort(t)
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	steps := parseTranscript(t, filepath.Join(root, "docs", "getting-started.md"), "## 1. One node", "### Status")
	if len(steps) < 15 {
		t.Fatalf("found %d steps in section 1 of getting-started.md; the parser or the document changed", len(steps))
	}
	c := testcluster.Start(t, testcluster.Options{Nodes: 1})
	ctx := testCtx(t, 3*time.Minute)
	bin := testcluster.Build(t)
	env := append(testcluster.CleanEnv(), "FACTSTR_ADDR="+c.Node(0).Addr())
	var bg []*tailProc
	nextOut := 0
	for _, st := range steps {
		what := fmt.Sprintf("getting-started.md:%d: factstr-node %s", st.line, strings.Join(st.args, " "))
		switch st.kind {
		case "bg":
			tp := startTail(t, ctx, env[len(env)-1:], st.args...)
			if _, ok := tp.out.Wait(30*time.Second, "following; Ctrl-C to stop"); !ok {
				t.Fatalf("%s: no 'following' line; printed %q", what, tp.out.Lines())
			}
			bg = append(bg, tp)
			t.Logf("%s (running)", what)
		case "bgout":
			tp := bg[nextOut]
			nextOut++
			if !tp.out.WaitCount(30*time.Second, len(st.want)) {
				t.Fatalf("getting-started.md:%d: the tail printed %q; want\n%s", st.line, tp.out.Lines(), strings.Join(st.want, "\n"))
			}
			if got, want := normalize(tp.out.Lines()), normalize(st.want); got != want {
				t.Errorf("getting-started.md:%d: the tail printed\n%s\nwant\n%s", st.line, got, want)
			}
			if nextOut == len(bg) { // the document stops both tails here
				for _, p := range bg {
					p.stop(t)
				}
			}
		case "run":
			var got []string
			if st.args[0] == "tail" && strings.Contains(strings.Join(st.want, "\n"), "following; Ctrl-C to stop") {
				tp := startTail(t, ctx, env[len(env)-1:], st.args...)
				if !tp.out.WaitCount(30*time.Second, len(st.want)) {
					t.Fatalf("%s printed %q; want\n%s", what, tp.out.Lines(), strings.Join(st.want, "\n"))
				}
				tp.stop(t)
				got = tp.out.Lines()
			} else {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				cmd := exec.CommandContext(cctx, bin, st.args...)
				cmd.Env, cmd.Dir = env, t.TempDir()
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				cancel()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatalf("%s: %v", what, err)
				}
				got = strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			}
			t.Logf("%s\n%s", what, strings.Join(got, "\n"))
			if g, w := normalize(got), normalize(st.want); g != w {
				t.Errorf("%s printed\n%s\nwant (as the document shows)\n%s", what, g, w)
			}
		}
	}
	if nextOut != len(bg) {
		t.Errorf("%d commands left running in the document, %d outputs shown for them", len(bg), nextOut)
	}
}
