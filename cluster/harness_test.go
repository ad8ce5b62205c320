package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/raftlog"
)

const waitFor = 20 * time.Second

type nodeSpec struct {
	id                   string
	dir                  string
	raftPort, gossipPort int
	grpcPort             int
	join                 []string
	expect               int
	tune                 func(*cluster.Config)
	// api: the node's gRPC server also serves the client API (the event
	// store service), for tests through the Go client.
	api bool
}

type testNode struct {
	*cluster.Node
	spec nodeSpec
	srv  *grpc.Server
	lis  net.Listener
}

type testCluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*testNode
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FACTSTR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func fastRaft() raftlog.Config {
	rc := raftlog.DefaultConfig()
	// Short enough for quick failovers, long enough that a -race build on
	// a loaded 2-core machine does not hold spurious elections.
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	return rc
}

func startNode(t testing.TB, spec nodeSpec) *testNode {
	t.Helper()
	n, err := tryStartNode(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startNodeRetry starts a node, picking new ports while the chosen ones
// were taken in the meantime (other tests on this machine pick ports too).
// It may run on any goroutine.
func startNodeRetry(t testing.TB, spec nodeSpec) (*testNode, error) {
	var err error
	for range 5 {
		var n *testNode
		if n, err = tryStartNode(t, spec); err == nil {
			return n, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
		spec.raftPort, spec.gossipPort, spec.grpcPort = freeport.T(t, true), freeport.T(t, true), 0
	}
	return nil, err
}

func tryStartNode(t testing.TB, spec nodeSpec) (*testNode, error) {
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", spec.grpcPort))
	if err != nil {
		return nil, fmt.Errorf("listen grpc for %s: %w", spec.id, err)
	}
	cfg := cluster.Config{
		NodeID:          spec.id,
		DataDir:         spec.dir,
		RaftAddr:        fmt.Sprintf("127.0.0.1:%d", spec.raftPort),
		GossipAddr:      fmt.Sprintf("127.0.0.1:%d", spec.gossipPort),
		GRPCAddr:        lis.Addr().String(),
		BootstrapExpect: spec.expect,
		Join:            spec.join,
		Raft:            fastRaft(),
		FastGossip:      true,
		PromoteAfter:    300 * time.Millisecond,
		ApplyTimeout:    10 * time.Second,
		ReadTimeout:     10 * time.Second,
		Logger:          testLogger(t),
	}
	if spec.tune != nil {
		spec.tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("start %s: %w", spec.id, err)
	}
	var srv *grpc.Server
	if spec.api {
		srv = grpc.NewServer(server.CodecOption())
		server.NewEventStore(n, cfg.Logger).Register(srv)
	} else {
		srv = grpc.NewServer()
	}
	cluster.RegisterPeerService(srv, n)
	go func() { _ = srv.Serve(lis) }()
	spec.grpcPort = lis.Addr().(*net.TCPAddr).Port
	return &testNode{Node: n, spec: spec, srv: srv, lis: lis}, nil
}

func (n *testNode) stop() {
	_ = n.Node.Close()
	n.srv.Stop()
}

func (n *testNode) kill() {
	cluster.Kill(n.Node)
	n.srv.Stop()
}

// newCluster starts size nodes with --bootstrap-expect size, joined to each
// other, and waits for a leader known to all.
func newCluster(t testing.TB, size int, tune func(*cluster.Config)) *testCluster {
	t.Helper()
	return newClusterWith(t, size, tune, false)
}

// newClusterWith is newCluster whose nodes also serve the client API when
// api is set.
func newClusterWith(t testing.TB, size int, tune func(*cluster.Config), api bool) *testCluster {
	t.Helper()
	base := t.TempDir()
	specs := make([]nodeSpec, size)
	for i := range specs {
		specs[i] = nodeSpec{
			id: fmt.Sprintf("n%d", i+1), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1)),
			raftPort: freeport.T(t, true), gossipPort: freeport.T(t, true), expect: size, tune: tune, api: api,
		}
	}
	for i := range specs {
		for j := range specs {
			if i != j {
				specs[i].join = append(specs[i].join, fmt.Sprintf("127.0.0.1:%d", specs[j].gossipPort))
			}
		}
	}
	c := &testCluster{t: t}
	var wg sync.WaitGroup
	nodes := make([]*testNode, size)
	errs := make([]error, size)
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = startNodeRetry(t, specs[i])
		}()
	}
	wg.Wait()
	c.nodes = nodes
	for _, err := range errs {
		if err != nil {
			c.stopAll()
			t.Fatal(err)
		}
	}
	t.Cleanup(c.stopAll)
	c.waitStable()
	c.waitVoters()
	return c
}

// waitVoters waits until every running node takes part in elections (the
// leader has recorded its data directory; see voteGate). A cluster that
// has just formed is not yet there: a node the leader has not recorded
// withholds its vote, so a test that kills the leader before then can be
// left without a quorum that votes.
func (c *testCluster) waitVoters() {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		var waiting []string
		for _, n := range c.running() {
			if !cluster.VotingAllowed(n.Node) {
				waiting = append(waiting, n.ID())
			}
		}
		if len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes %v did not take part in elections within %v", waiting, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) stopAll() {
	c.mu.Lock()
	nodes := append([]*testNode(nil), c.nodes...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.stop() }()
	}
	wg.Wait()
}

// waitStable waits until every running node knows the same leader and the
// leader is ready for linearizable reads.
func (c *testCluster) waitStable() *testNode {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		leader := c.leaderNow()
		if leader != nil {
			agree := true
			for _, n := range c.running() {
				if n.LeaderID() != leader.ID() {
					agree = false
				}
			}
			if agree {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := leader.ReadBarrier(ctx)
				cancel()
				if err == nil {
					return leader
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var states []string
	for _, n := range c.running() {
		states = append(states, fmt.Sprintf("%s: %s term %d leader %q voting %v withheld %d applied %d",
			n.ID(), n.Raft().State(), n.Raft().CurrentTerm(), n.LeaderID(), cluster.VotingAllowed(n.Node), cluster.VotesWithheld(n.Node), n.Info().AppliedIndex))
	}
	c.t.Fatalf("cluster did not settle on a leader within %v: %s", waitFor, strings.Join(states, "; "))
	return nil
}

func (c *testCluster) running() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader returns the node that leads, waiting through an election (a
// test may ask in the middle of one); no leader within waitFor fails the
// test with every node's view, as waitStable does.
func (c *testCluster) leader() *testNode {
	deadline := time.Now().Add(waitFor)
	for {
		if n := c.leaderNow(); n != nil {
			return n
		}
		if time.Now().After(deadline) {
			return c.waitStable() // fails with the nodes' states
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderNow returns the running node that leads now, or nil.
func (c *testCluster) leaderNow() *testNode {
	for _, n := range c.running() {
		if n.Raft().State() == raft.Leader {
			return n
		}
	}
	return nil
}

func (c *testCluster) follower() *testNode {
	for _, n := range c.running() {
		if n.Raft().State() == raft.Follower {
			return n
		}
	}
	return nil
}

// remove forgets node i (after a stop or kill) and returns its spec.
func (c *testCluster) remove(n *testNode) nodeSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.nodes {
		if m == n {
			c.nodes[i] = nil
		}
	}
	return n.spec
}

func (c *testCluster) add(n *testNode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.nodes {
		if m == nil {
			c.nodes[i] = n
			return
		}
	}
	c.nodes = append(c.nodes, n)
}

// followerStore is a contract.EventStore on a follower whose Close stops the
// whole cluster: the conformance suite opens and closes one per subtest.
// followerStore is a follower as the conformance suite sees a store: its
// events and streams, and its durable stream management.
type followerStore struct {
	*cluster.Node
	*cluster.DurableAdmin
	c *testCluster
}

func (f followerStore) Close() error {
	err := f.Node.Close()
	f.c.stopAll()
	return err
}

var _ contract.EventStore = followerStore{}
var _ contract.DurableAdmin = followerStore{}

func ev(typ, payload string) contract.NewEvent {
	return contract.NewEvent{Type: typ, Payload: []byte(payload)}
}
