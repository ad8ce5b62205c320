//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestSingleNodeDefaults runs the binary with no flags at all, as the
// README's first line does, and drives it with the terminal subcommands.
func TestSingleNodeDefaults(t *testing.T) {
	skipShort(t)
	for _, p := range []struct {
		netw, addr string
	}{{"tcp", "127.0.0.1:7400"}, {"tcp", "127.0.0.1:7401"}, {"tcp", "127.0.0.1:7402"}, {"udp", "127.0.0.1:7402"}} {
		if err := portFree(p.netw, p.addr); err != nil {
			t.Skipf("the default ports must be free for this test, but %s %s is busy: %v", p.netw, p.addr, err)
		}
	}
	bin := testcluster.Build(t)
	dir := t.TempDir()
	ctx := testCtx(t, 2*time.Minute)

	logPath := filepath.Join(t.TempDir(), "node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin) // no flags at all
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	node, err := testcluster.Spawn(t, "factstr-node", cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("---- node log ----\n%s", tailFile(logPath, 60))
		}
	}()

	// Ready: gRPC health "" SERVING on the default address.
	conn, err := grpc.NewClient("127.0.0.1:7400", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	var last string
	waitFor(t, 30*time.Second, func() bool {
		if node.Exited() {
			t.Fatalf("the node exited (%s) before it was ready", node.ExitString())
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		r, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			last = err.Error()
			return false
		}
		last = r.GetStatus().String()
		return r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, func() string { return "health SERVING on 127.0.0.1:7400; last: " + last })

	cli := func(args ...string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, _, err := runCLI(cctx, bin, dir, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// append
	if out := cli("append", "--type", "T", "--payload", `{"a":1}`); !strings.Contains(out, "appended 1 event(s): sequence 1..1") {
		t.Errorf("append printed %q", out)
	}

	// query --json
	var q struct {
		Events []tailRecord `json:"events"`
		Last   uint64       `json:"last_returned_sequence_number"`
		Ver    uint64       `json:"current_context_version"`
	}
	out := cli("query", "--type", "T", "--json")
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatalf("query --json printed %q: %v", out, err)
	}
	if len(q.Events) != 1 || q.Events[0].Seq != 1 || q.Events[0].Type != "T" || !sameJSON(q.Events[0].Payload, []byte(`{"a":1}`)) ||
		q.Events[0].OccurredAt.IsZero() || q.Last != 1 || q.Ver != 1 {
		t.Errorf("query --json: %+v, want the one event 1 T {\"a\":1} with an occurred_at, last 1, version 1", q)
	}

	// status --json
	var st map[string]any
	out = cli("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	if st["leader_id"] != "node1" {
		t.Errorf("status leader_id = %v, want node1 (the default --node-id); status: %s", st["leader_id"], out)
	}
	members, _ := st["members"].([]any)
	if len(members) != 1 {
		t.Fatalf("status members = %v, want one", st["members"])
	}
	m0, _ := members[0].(map[string]any)
	for _, k := range []string{"id", "raft_addr", "grpc_addr", "suffrage", "state", "applied_index"} {
		if _, ok := m0[k]; !ok {
			t.Errorf("status members[0] has no %q: %v", k, m0)
		}
	}
	want := map[string]any{"id": "node1", "raft_addr": "127.0.0.1:7401", "grpc_addr": "127.0.0.1:7400", "suffrage": "voter", "state": "leader"}
	for k, v := range want {
		if m0[k] != v {
			t.Errorf("status members[0].%s = %v, want %v", k, m0[k], v)
		}
	}
	if ai, _ := m0["applied_index"].(float64); ai < 1 {
		t.Errorf("status members[0].applied_index = %v, want at least 1", m0["applied_index"])
	}

	// tail: follow, then see the next append as one JSON line.
	tailOut := newLines(nil)
	tailErr := newLines(nil)
	tcmd := exec.Command(bin, "tail")
	tcmd.Dir = dir
	tcmd.Stdout, tcmd.Stderr = tailOut, tailErr
	tail, err := testcluster.Spawn(t, "tail", tcmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tailErr.Wait(30*time.Second, "following"); !ok {
		t.Fatalf("tail did not start following within 30s (%s): %q", tail.ExitString(), tailErr.Lines())
	}
	cli("append", "--type", "T", "--payload", `{"a":2}`)
	if !tailOut.WaitCount(10*time.Second, 1) {
		t.Fatalf("tail printed no line within 10s of an append; stderr: %q", tailErr.Lines())
	}
	var rec tailRecord
	if err := json.Unmarshal([]byte(tailOut.Lines()[0]), &rec); err != nil {
		t.Fatalf("tail printed %q: %v", tailOut.Lines()[0], err)
	}
	if rec.Seq != 2 || rec.Type != "T" || !sameJSON(rec.Payload, []byte(`{"a":2}`)) || rec.OccurredAt.IsZero() {
		t.Errorf("tail printed %+v, want sequence 2 T {\"a\":2}", rec)
	}
	if clean, err := tail.Terminate(10 * time.Second); !clean || err != nil {
		t.Errorf("tail on SIGTERM: %v", err)
	}

	// The data went to ./factstr-data in the working directory.
	if fi, err := os.Stat(filepath.Join(dir, "factstr-data")); err != nil || !fi.IsDir() {
		t.Errorf("./factstr-data in the node's working directory: %v", err)
	} else if _, err := os.Stat(filepath.Join(dir, "factstr-data", "node.json")); err != nil {
		t.Errorf("./factstr-data holds no node.json: %v", err)
	}

	// SIGTERM: a clean exit, code 0, in bounded time.
	start := time.Now()
	clean, err := node.Terminate(25 * time.Second)
	if !clean || err != nil {
		t.Fatalf("the node did not exit with code 0 within 25s of SIGTERM (%s): %v", node.ExitString(), err)
	}
	t.Logf("the node exited with code %d %v after SIGTERM", node.ExitCode(), time.Since(start).Round(time.Millisecond))
	if !strings.Contains(tailFile(logPath, 100), "shutting down") {
		t.Errorf("the node log does not say it shut down")
	}
}

func portFree(netw, addr string) error {
	switch netw {
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	default:
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return l.Close()
	}
}
