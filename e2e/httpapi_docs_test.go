//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestAPIDocsCurlExamples runs every curl line of docs/api.md, in order,
// with the real curl against a 3-node cluster, the documented addresses
// replaced by the cluster's: each must succeed (a JSON answer without an
// error; a stream must open and say "subscribed"). An UNAVAILABLE answer is
// retried, as the docs tell clients to (after a leadership change).
func TestAPIDocsCurlExamples(t *testing.T) {
	skipShort(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.SplitSeq(string(doc), "\n") {
		if strings.HasPrefix(l, "curl ") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 12 {
		t.Fatalf("docs/api.md has %d curl lines; the HTTP section lost its examples", len(lines))
	}
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	replace := strings.NewReplacer(
		"127.0.0.1:7403", c.Node(0).HTTPAddr(), // the node the examples talk to (n1)
		"127.0.0.1:7412", c.Node(1).GossipAddr(), // n2's gossip address (join)
	)
	env := append(os.Environ(), "FACTSTR_TOKEN=unused-without-tokens")
	parkedReady := false
	for i, line := range lines {
		cmdline := replace.Replace(line)
		if strings.Contains(line, "/parked") && !parkedReady {
			// The parked-event examples manage the name "outbox", which a
			// service creates with the retry-then-park policy.
			parkSomething(t, c, "outbox")
			parkedReady = true
		}
		if strings.Contains(line, "/stream") {
			runStreamExample(t, cmdline, env)
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
			cmd.Env = env
			out, err := cmd.Output()
			cancel()
			if err != nil {
				t.Fatalf("example %d failed: %v\n%s\n%s", i+1, err, line, out)
			}
			var v map[string]json.RawMessage
			if jerr := json.Unmarshal(out, &v); jerr != nil {
				t.Fatalf("example %d answered no JSON object (%v):\n%s\n%.500s", i+1, jerr, line, out)
			}
			if _, bad := v["error"]; !bad {
				break
			}
			if !bytes.Contains(out, []byte(`"UNAVAILABLE"`)) || time.Now().After(deadline) {
				t.Fatalf("example %d answered an error:\n%s\n%s", i+1, line, out)
			}
			time.Sleep(200 * time.Millisecond) // the cluster is electing; retry as documented
		}
	}
}

// parkSomething creates durable name with retry-then-park (one attempt)
// through a Go client whose handler refuses everything, waits until a
// batch is parked, and unsubscribes.
func parkSomething(t *testing.T, c *testcluster.Cluster, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Client(t)
	refuse := func(context.Context, []contract.EventRecord) error {
		return errors.New("smtp: 550 mailbox unavailable")
	}
	sub, err := cl.StreamAllDurable(ctx, name, refuse, contract.RetryThenPark(1, 10*time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sub.Unsubscribe(); <-sub.Done() }()
	waitFor(t, 30*time.Second, func() bool {
		ps, err := cl.ListParked(ctx, name, 0, 1)
		return err == nil && len(ps) > 0
	}, func() string { return "a parked event of " + name })
}

// runStreamExample runs a streaming curl line until it printed
// "event: subscribed", then ends it.
func runStreamExample(t *testing.T, cmdline string, env []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "exec "+cmdline)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	var seen []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if sc.Text() == "event: subscribed" {
			return
		}
		if sc.Text() == "event: error" || strings.HasPrefix(sc.Text(), `{"error"`) {
			break
		}
	}
	t.Fatalf("stream example did not subscribe:\n%s\n%s", cmdline, strings.Join(seen, "\n"))
}
