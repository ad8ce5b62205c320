//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// writers append one event per call, from several goroutines through one
// client, until stopped, and remember every acknowledged append (sequence
// number and payload) and every payload whose call failed (its outcome is
// unknown to the caller, so it may or may not be in the log).
type writers struct {
	t   *testing.T
	tag string

	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	acked    map[uint64]string
	failed   map[string]bool
	failures []string // "payload: error", for the report
	count    atomic.Int64
}

// startWriters starts n goroutines appending through cl until stopAndWait.
// Each call is bounded by perCall so that stopping never waits long.
func startWriters(t *testing.T, ctx context.Context, cl *client.Client, tag string, n int) *writers {
	t.Helper()
	w := &writers{t: t, tag: tag, stop: make(chan struct{}), acked: map[uint64]string{}, failed: map[string]bool{}}
	const perCall = 15 * time.Second
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				payload := fmt.Sprintf(`{"t":%q,"g":%d,"i":%d}`, tag, g, i)
				cctx, cancel := context.WithTimeout(ctx, perCall)
				res, err := cl.Append(cctx, []contract.NewEvent{ev("e2e-membership", payload)})
				cancel()
				w.mu.Lock()
				if err != nil {
					w.failed[payload] = true
					w.failures = append(w.failures, payload+": "+err.Error())
				} else if res.CommittedCount != 1 || res.FirstSequenceNumber == 0 || res.FirstSequenceNumber != res.LastSequenceNumber {
					t.Errorf("Append of one event returned %+v", res)
				} else if prev, dup := w.acked[res.FirstSequenceNumber]; dup {
					t.Errorf("sequence %d acknowledged twice: for %s and %s", res.FirstSequenceNumber, prev, payload)
				} else {
					w.acked[res.FirstSequenceNumber] = payload
					w.count.Add(1)
				}
				w.mu.Unlock()
				if err != nil {
					// Do not spin while the cluster is briefly unavailable.
					select {
					case <-w.stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(w.stopAndWait) // on an early t.Fatal
	return w
}

// acks is how many appends were acknowledged so far.
func (w *writers) acks() int { return int(w.count.Load()) }

// maxAcked is the highest acknowledged sequence number so far.
func (w *writers) maxAcked() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m uint64
	for s := range w.acked {
		m = max(m, s)
	}
	return m
}

// waitMore waits up to d until n more appends than now were acknowledged.
func (w *writers) waitMore(t *testing.T, n int, d time.Duration, when string) {
	t.Helper()
	target := w.acks() + n
	waitFor(t, d, func() bool { return w.acks() >= target }, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		last := "none"
		if len(w.failures) > 0 {
			last = w.failures[len(w.failures)-1]
		}
		return fmt.Sprintf("%d more acknowledged appends %s (have %d of %d; %d failed calls, last: %s)", n, when, w.acks(), target, len(w.failures), last)
	})
}

func (w *writers) stopAndWait() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// snapshot returns copies of the acknowledged and failed appends.
func (w *writers) snapshot() (map[uint64]string, map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := make(map[uint64]string, len(w.acked))
	for k, v := range w.acked {
		a[k] = v
	}
	f := make(map[string]bool, len(w.failed))
	for k := range w.failed {
		f[k] = true
	}
	return a, f
}

// nodeAddr names a node's gRPC address for the final check.
type nodeAddr struct{ id, addr string }

// finish stops the writers and checks, on every node given, with local
// reads once the node has applied the cluster's linearizable head: the log
// is gapless, every acknowledged append is at its sequence number, every
// other event is from a call that failed, no payload is there twice, and
// all nodes hold the same log. It returns that log.
func (w *writers) finish(t *testing.T, ctx context.Context, c *testcluster.Cluster, cl *client.Client, nodes []nodeAddr) []contract.EventRecord {
	t.Helper()
	w.stopAndWait()
	acked, failed := w.snapshot()
	if len(acked) == 0 {
		t.Fatal("the writers got no append acknowledged")
	}
	var maxSeq uint64
	for s := range acked {
		maxSeq = max(maxSeq, s)
	}
	w.mu.Lock()
	nFailed := len(w.failures)
	for i, f := range w.failures {
		if i == 5 {
			t.Logf("... and %d more failed appends", nFailed-5)
			break
		}
		t.Logf("failed append (outcome unknown to the caller): %s", f)
	}
	w.mu.Unlock()

	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	head, err := cl.Query(hctx, contract.EventQuery{})
	cancel()
	if err != nil {
		t.Fatalf("linearizable read of the head: %v", err)
	}
	h := head.CurrentContextVersion
	if h < maxSeq {
		t.Fatalf("linearizable head %d is below the highest acknowledged sequence number %d", h, maxSeq)
	}
	// A failed call may still commit after the head was read: read again
	// from the longest log until every node holds the same number of events.
	var logs [][]contract.EventRecord
	for attempt := 0; ; attempt++ {
		logs = logs[:0]
		longest := h
		for _, nd := range nodes {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			recs, err := localLog(lctx, c.Client(t, nd.addr), h)
			cancel()
			if err != nil {
				t.Fatalf("local read on %s (%s) after sequence %d: %v", nd.id, nd.addr, h, err)
			}
			logs = append(logs, recs)
			longest = max(longest, uint64(len(recs)))
		}
		if longest == h || attempt == 3 {
			break
		}
		h = longest
	}
	for i, nd := range nodes {
		checkLog(t, "node "+nd.id, logs[i], h, acked, failed)
		if d := diffLogs(logs[0], logs[i]); d != "" {
			t.Fatalf("nodes %s and %s hold different logs: %s", nodes[0].id, nd.id, d)
		}
	}
	ids := make([]string, len(nodes))
	for i, nd := range nodes {
		ids[i] = nd.id
	}
	t.Logf("%d appends acknowledged (%d calls failed); nodes %s hold the same %d-event log with every acknowledged append",
		len(acked), nFailed, strings.Join(ids, ","), h)
	return logs[0]
}

// runningNodes lists the cluster's running nodes for writers.finish.
func runningNodes(c *testcluster.Cluster) []nodeAddr {
	var out []nodeAddr
	for _, nd := range c.Nodes() {
		if nd.Running() {
			out = append(out, nodeAddr{nd.ID(), nd.Addr()})
		}
	}
	return out
}

// statusAt asks the node at addr for its AdminService status, bounded.
func statusAt(ctx context.Context, cl *client.Client) (*factstrv1.StatusResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cl.AdminAt(0).Status(cctx, &factstrv1.StatusRequest{})
}

// memberOf returns id's entry in st, or nil.
func memberOf(st *factstrv1.StatusResponse, id string) *factstrv1.Member {
	for _, m := range st.GetMembers() {
		if m.GetId() == id {
			return m
		}
	}
	return nil
}

// describeMembers is a one-line summary of a status's configuration.
func describeMembers(st *factstrv1.StatusResponse) string {
	if st == nil {
		return "(no status)"
	}
	var parts []string
	for _, m := range st.GetMembers() {
		parts = append(parts, fmt.Sprintf("%s=%s/%s@%s", m.GetId(), m.GetSuffrage(), m.GetState(), m.GetRaftAddr()))
	}
	return fmt.Sprintf("node %s leader %q cluster %q members [%s] warnings %q", st.GetNodeId(), st.GetLeaderId(), st.GetClusterId(), strings.Join(parts, " "), st.GetWarnings())
}

// voters returns the sorted ids of the voters in st.
func voters(st *factstrv1.StatusResponse) []string {
	var out []string
	for _, m := range st.GetMembers() {
		if m.GetSuffrage() == "voter" {
			out = append(out, m.GetId())
		}
	}
	slices.Sort(out)
	return out
}

// leaderStatus asks the nodes behind clients (by id) which leader they
// agree on and returns that leader's own status. ok is false while they do
// not agree, the leader is not among them, or it does not call itself
// leader.
func leaderStatus(ctx context.Context, clients map[string]*client.Client) (st *factstrv1.StatusResponse, seen string, ok bool) {
	leader := ""
	var parts []string
	for id, cl := range clients {
		s, err := statusAt(ctx, cl)
		if err != nil {
			parts = append(parts, id+": "+err.Error())
			return nil, strings.Join(parts, "; "), false
		}
		parts = append(parts, id+": leader "+s.GetLeaderId())
		if s.GetLeaderId() == "" || (leader != "" && s.GetLeaderId() != leader) {
			return nil, strings.Join(parts, "; "), false
		}
		leader = s.GetLeaderId()
	}
	lc, found := clients[leader]
	if !found {
		return nil, strings.Join(parts, "; ") + " (leader not among the nodes asked)", false
	}
	s, err := statusAt(ctx, lc)
	if err != nil || s.GetLeaderId() != leader {
		return nil, strings.Join(parts, "; ") + fmt.Sprintf(" (leader's own status: %v)", err), false
	}
	return s, describeMembers(s), true
}

// extraNode is a factstr-node process started outside the harness's
// cluster (a node added later, a duplicate id), with its own ports.
type extraNode struct {
	id, dataDir, logPath           string
	grpcAddr, raftAddr, gossipAddr string
	proc                           *testcluster.Process
}

// startExtraNode starts `factstr-node serve --node-id id` with fresh ports,
// a data directory under dir, the harness's fast Raft timeouts and args.
// It is terminated when the test ends; its log tail is printed on failure.
func startExtraNode(t *testing.T, dir, id string, args ...string) *extraNode {
	t.Helper()
	var p [3]int
	for i := range p {
		var err error
		if p[i], err = freeport.Get(i == 2); err != nil {
			t.Fatal(err)
		}
	}
	n := &extraNode{
		id:         id,
		dataDir:    filepath.Join(dir, id+"-data"),
		logPath:    filepath.Join(dir, id+".log"),
		grpcAddr:   fmt.Sprintf("127.0.0.1:%d", p[0]),
		raftAddr:   fmt.Sprintf("127.0.0.1:%d", p[1]),
		gossipAddr: fmt.Sprintf("127.0.0.1:%d", p[2]),
	}
	all := append([]string{"serve", "--node-id", id, "--data-dir", n.dataDir,
		"--grpc-addr", n.grpcAddr, "--raft-addr", n.raftAddr, "--gossip-addr", n.gossipAddr}, testcluster.FastRaftArgs...)
	all = append(all, args...)
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== e2e: starting factstr-node %s\n", strings.Join(all, " "))
	cmd := exec.Command(testcluster.Build(t), all...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if n.proc, err = testcluster.Spawn(t, id, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- last 60 lines of %s (%s, %s) ----\n%s", id, n.logPath, n.proc.ExitString(), tailFile(n.logPath, 60))
		}
	})
	t.Logf("started %s: grpc %s raft %s gossip %s, args %v", id, n.grpcAddr, n.raftAddr, n.gossipAddr, args)
	return n
}

// cli runs a factstr-node subcommand as a subprocess, bounded by d, and
// returns stdout, stderr and its exit code (0: success).
func cli(t *testing.T, ctx context.Context, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	stdout, stderr, err := runCLI(cctx, testcluster.Build(t), t.TempDir(), args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("factstr-node %s: %v", strings.Join(args, " "), err)
	}
	if cctx.Err() != nil {
		t.Fatalf("factstr-node %s did not finish within %v (stdout %q, stderr %q)", strings.Join(args, " "), d, stdout, stderr)
	}
	t.Logf("$ factstr-node %s   (exit %d, %v)\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), stdout, stderr)
	return stdout, stderr, code
}

// statusJSON is `admin status --json`.
type statusJSON struct {
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
	LeaderID  string `json:"leader_id"`
	Term      uint64 `json:"term"`
	Members   []struct {
		ID           string `json:"id"`
		RaftAddr     string `json:"raft_addr"`
		GRPCAddr     string `json:"grpc_addr"`
		Suffrage     string `json:"suffrage"`
		State        string `json:"state"`
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"members"`
	Warnings []string `json:"warnings"`
}

func parseStatusJSON(t *testing.T, out string) statusJSON {
	t.Helper()
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("admin status --json printed %q: %v", out, err)
	}
	return st
}
