//go:build unix

package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
)

// Defaults of Options.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 30 * time.Second
	DefaultLogTailLines = 60
	// PollInterval is how often readiness and leader waits poll.
	PollInterval = 20 * time.Millisecond
)

// FastRaftArgs are the Raft timeouts every node gets before Options.Args.
var FastRaftArgs = []string{"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms"}

// Options configure Start.
type Options struct {
	// Nodes is the number of processes (default 3). Each gets
	// --bootstrap-expect Nodes and --join with the others' gossip addresses.
	Nodes int
	// Args are extra `serve` flags for every node, after the harness's own
	// (a later scalar flag overrides an earlier one; --join adds).
	Args []string
	// NodeArgs are extra flags for node i, after Args.
	NodeArgs map[int][]string
	// Env is added to every node's environment (FACTSTR_* variables of the
	// test process itself are dropped).
	Env []string
	// ReadyTimeout bounds Start's wait for WaitReady (default 30s).
	ReadyTimeout time.Duration
	// NoWait makes Start return as soon as the processes run.
	NoWait bool
	// StopTimeout bounds Node.Stop and Cluster.Stop before SIGKILL
	// (default 30s; the cleanup at the end of the test uses DefaultGrace).
	StopTimeout time.Duration
	// LogTailLines is how many lines of each node's log a failed test
	// prints (default 60).
	LogTailLines int
	// Token, for a cluster started with --token or --auth-file, is an
	// admin token the harness's own calls (readiness, Status, Conn) and
	// its clients send.
	Token string
}

// Cluster is a set of factstr-node processes.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	opts Options

	nodes []*Node

	clientLogFile *os.File
	clientLog     *slog.Logger
	clientsMu     sync.Mutex
	clientSeq     int
}

// Start builds the binary (once per process), starts opts.Nodes processes
// and, unless opts.NoWait, waits until WaitReady succeeds. A node that fails
// to bind a port (another process took it) makes Start retry the whole
// cluster with new ports, up to three times. Start fails the test when the
// cluster does not come up.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := Build(t)
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.LogTailLines <= 0 {
		opts.LogTailLines = DefaultLogTailLines
	}
	dir := t.TempDir() // its removal is registered first, so it runs after our cleanup
	c := &Cluster{t: t, bin: bin, dir: dir, opts: opts}
	f, err := os.OpenFile(filepath.Join(dir, "clients.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	c.clientLogFile = f
	c.clientLog = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(c.cleanup)

	const attempts = 3
	for attempt := 1; ; attempt++ {
		if err := c.launch(attempt); err != nil {
			t.Fatalf("testcluster: %v", err)
		}
		if opts.NoWait {
			return c
		}
		ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
		err := c.WaitReady(ctx)
		cancel()
		if err == nil {
			return c
		}
		if attempt < attempts && c.portConflict() {
			t.Logf("testcluster: a node could not bind its port (attempt %d); restarting the cluster on new ports", attempt)
			c.killAll()
			continue
		}
		t.Fatalf("testcluster: %d-node cluster not ready within %v: %v", opts.Nodes, opts.ReadyTimeout, err)
	}
}

// launch allocates ports and data directories and starts every node.
func (c *Cluster) launch(attempt int) error {
	c.closeConns()
	n := c.opts.Nodes
	nodes := make([]*Node, n)
	for i := range nodes {
		var p [4]int // gRPC, Raft, gossip (TCP and UDP), HTTP
		for j := range p {
			var err error
			if p[j], err = FreePort(j == 2); err != nil {
				return err
			}
		}
		base := filepath.Join(c.dir, fmt.Sprintf("a%d", attempt))
		nodes[i] = &Node{
			c:          c,
			index:      i,
			id:         fmt.Sprintf("n%d", i+1),
			dataDir:    filepath.Join(base, fmt.Sprintf("n%d", i+1), "data"),
			logPath:    filepath.Join(base, fmt.Sprintf("n%d.log", i+1)),
			grpcAddr:   fmt.Sprintf("127.0.0.1:%d", p[0]),
			raftAddr:   fmt.Sprintf("127.0.0.1:%d", p[1]),
			gossipAddr: fmt.Sprintf("127.0.0.1:%d", p[2]),
			httpAddr:   fmt.Sprintf("127.0.0.1:%d", p[3]),
		}
	}
	for _, nd := range nodes {
		if err := os.MkdirAll(filepath.Dir(nd.dataDir), 0o755); err != nil {
			return err
		}
		for _, o := range nodes {
			if o != nd {
				nd.join = append(nd.join, o.gossipAddr)
			}
		}
	}
	c.nodes = nodes
	var errs []error
	for _, nd := range nodes {
		if err := nd.start(nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.killAll()
		return err
	}
	return nil
}

func (c *Cluster) portConflict() bool {
	for _, nd := range c.nodes {
		if p := nd.Process(); p != nil && p.Exited() {
			if b, err := os.ReadFile(nd.logPath); err == nil && bytes.Contains(b, []byte("address already in use")) {
				return true
			}
		}
	}
	return false
}

func (c *Cluster) killAll() {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Kill() }()
	}
	wg.Wait()
}

func (c *Cluster) closeConns() {
	for _, nd := range c.nodes {
		nd.closeConn()
	}
}

func (c *Cluster) cleanup() {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := nd.Process()
			if p == nil || p.Exited() {
				return
			}
			if clean, err := p.Terminate(DefaultGrace); !clean || err != nil {
				c.t.Logf("testcluster: cleanup: %s: %v", nd.id, err)
			}
		}()
	}
	wg.Wait()
	c.closeConns()
	if c.t.Failed() {
		c.DumpLogs()
	}
	_ = c.clientLogFile.Close()
}

// DumpLogs prints the last Options.LogTailLines lines of every node's log
// (and of the clients' log) with t.Log. The cleanup calls it when the test
// failed.
func (c *Cluster) DumpLogs() {
	for _, nd := range c.nodes {
		c.t.Logf("---- last %d lines of %s (%s, %s) ----\n%s", c.opts.LogTailLines, nd.id, nd.logPath, nd.describe(), tailFile(nd.logPath, c.opts.LogTailLines))
	}
	c.t.Logf("---- last %d lines of the clients' log ----\n%s", c.opts.LogTailLines, tailFile(c.clientLogFile.Name(), c.opts.LogTailLines))
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Dir is the cluster's temporary directory (data directories and logs).
func (c *Cluster) Dir() string { return c.dir }

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i (0-based; its id is n<i+1>).
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Nodes returns every node.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Addrs returns every node's gRPC address, in node order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.Addr()
	}
	return out
}

// NodeByID returns the index of the node with id, or -1.
func (c *Cluster) NodeByID(id string) int {
	for i, nd := range c.nodes {
		if nd.id == id {
			return i
		}
	}
	return -1
}

// Stop stops every running node at once (SIGTERM, SIGKILL after
// Options.StopTimeout) and waits. It returns the nodes' errors: an exit
// code other than 0 or a node that had to be killed.
func (c *Cluster) Stop() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = nd.Stop() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Client dials a client over addrs (default: every node, in node order) and
// closes it when the test ends. Its logs go to the cluster's clients.log.
func (c *Cluster) Client(t testing.TB, addrs ...string) *client.Client {
	t.Helper()
	return c.DialClient(t, addrs)
}

// DialClient is Client with extra client options.
func (c *Cluster) DialClient(t testing.TB, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	if len(addrs) == 0 {
		addrs = c.Addrs()
	}
	c.clientsMu.Lock()
	c.clientSeq++
	seq := c.clientSeq
	c.clientsMu.Unlock()
	base := []client.Option{client.WithLogger(c.clientLog.With("client", seq, "targets", strings.Join(addrs, ",")))}
	if c.opts.Token != "" {
		base = append(base, client.WithToken(c.opts.Token))
	}
	opts = append(base, opts...)
	cl, err := client.Dial(context.Background(), addrs, opts...)
	if err != nil {
		t.Fatalf("testcluster: dial %v: %v", addrs, err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// nodeView is what one readiness poll saw of a node.
type nodeView struct {
	serving bool
	leader  string
	err     error
}

func (v nodeView) String() string {
	if v.err != nil {
		return "error: " + v.err.Error()
	}
	return fmt.Sprintf("serving=%v leader=%q", v.serving, v.leader)
}

// observeTimeout bounds one node's health and status calls. A node's
// Status asks every peer for its progress, up to a second each, so a
// paused (SIGSTOP) peer makes it slow.
const observeTimeout = 4 * time.Second

func (c *Cluster) observe(ctx context.Context, nd *Node) nodeView {
	cctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	conn, err := nd.Conn()
	if err != nil {
		return nodeView{err: err}
	}
	h, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		return nodeView{err: fmt.Errorf("health: %w", err)}
	}
	st, err := factstrv1.NewAdminServiceClient(conn).Status(cctx, &factstrv1.StatusRequest{})
	if err != nil {
		return nodeView{err: fmt.Errorf("status: %w", err)}
	}
	return nodeView{serving: h.GetStatus() == healthpb.HealthCheckResponse_SERVING, leader: st.GetLeaderId()}
}

// live returns the nodes that should answer: started, not killed or
// stopped through the harness, not paused.
func (c *Cluster) live() []*Node {
	var out []*Node
	for _, nd := range c.nodes {
		if nd.wantRunning() && !nd.Paused() {
			out = append(out, nd)
		}
	}
	return out
}

// crashed returns an error for a node that should run but exited.
func (c *Cluster) crashed() error {
	for _, nd := range c.nodes {
		if p := nd.Process(); nd.wantRunning() && p != nil && p.Exited() {
			return fmt.Errorf("node %s exited unexpectedly (%s); last log lines:\n%s", nd.id, p.ExitString(), tailFile(nd.logPath, 15))
		}
	}
	return nil
}

// agreedLeader polls once: every live node serving (if needServing) and
// naming the same leader, which is a live node. It returns that node's index.
func (c *Cluster) agreedLeader(ctx context.Context, needServing bool) (int, string) {
	live := c.live()
	if len(live) == 0 {
		return -1, "no node is running"
	}
	views := make([]nodeView, len(live))
	var wg sync.WaitGroup
	for i, nd := range live {
		wg.Add(1)
		go func() { defer wg.Done(); views[i] = c.observe(ctx, nd) }()
	}
	wg.Wait()
	var parts []string
	leader, ok := "", true
	for i, nd := range live {
		v := views[i]
		parts = append(parts, nd.id+": "+v.String())
		switch {
		case v.err != nil, needServing && !v.serving, v.leader == "":
			ok = false
		case leader == "":
			leader = v.leader
		case leader != v.leader:
			ok = false
		}
	}
	state := strings.Join(parts, "; ")
	if !ok {
		return -1, state
	}
	i := c.NodeByID(leader)
	if i < 0 || !c.nodes[i].wantRunning() || c.nodes[i].Paused() {
		return -1, state + fmt.Sprintf(" (leader %q is not a live node)", leader)
	}
	return i, state
}

func (c *Cluster) poll(ctx context.Context, what string, needServing bool) (int, error) {
	last := "nothing observed yet"
	for {
		if err := c.crashed(); err != nil {
			return -1, err
		}
		i, state := c.agreedLeader(ctx, needServing)
		if i >= 0 {
			return i, nil
		}
		last = state
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("%s: %w; last seen: %s", what, ctx.Err(), last)
		case <-time.After(PollInterval):
		}
	}
}

// WaitReady waits until every live node (started, not killed, stopped or
// paused through the harness) reports gRPC health "" SERVING and all of
// them name the same leader, which is itself live. It fails at once when a
// node that should run has exited.
func (c *Cluster) WaitReady(ctx context.Context) error {
	_, err := c.poll(ctx, "cluster not ready", true)
	return err
}

// Leader waits until the live nodes agree on a live leader and returns its
// index.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	return c.poll(ctx, "no agreed leader", false)
}

// Follower returns the index of the first live node that is not the leader.
func (c *Cluster) Follower(ctx context.Context) (int, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return -1, err
	}
	for _, nd := range c.live() {
		if nd.index != l {
			return nd.index, nil
		}
	}
	return -1, fmt.Errorf("no live follower: the leader %s is the only live node", c.nodes[l].id)
}

// Node is one factstr-node process of a Cluster.
type Node struct {
	c     *Cluster
	index int
	join  []string

	mu                             sync.Mutex
	id, dataDir, logPath           string
	grpcAddr, raftAddr, gossipAddr string
	httpAddr                       string
	args                           []string // of the latest start
	proc                           *Process
	running                        bool // started and not killed/stopped through the harness
	conn                           *grpc.ClientConn
}

// Index is the node's position in the cluster (0-based).
func (n *Node) Index() int { return n.index }

// ID is the node's --node-id.
func (n *Node) ID() string { return n.get(func() string { return n.id }) }

// Addr is the node's gRPC address host:port.
func (n *Node) Addr() string { return n.get(func() string { return n.grpcAddr }) }

// HTTPAddr is the node's HTTP API address host:port ("" when a start gave
// --http-addr "").
func (n *Node) HTTPAddr() string { return n.get(func() string { return n.httpAddr }) }

// HTTPURL is "http://" and HTTPAddr.
func (n *Node) HTTPURL() string { return "http://" + n.HTTPAddr() }

// RaftAddr is the node's Raft address host:port.
func (n *Node) RaftAddr() string { return n.get(func() string { return n.raftAddr }) }

// GossipAddr is the node's gossip address host:port (TCP and UDP).
func (n *Node) GossipAddr() string { return n.get(func() string { return n.gossipAddr }) }

// DataDir is the node's --data-dir.
func (n *Node) DataDir() string { return n.get(func() string { return n.dataDir }) }

// LogPath is the file receiving the node's stdout and stderr (all runs).
func (n *Node) LogPath() string { return n.logPath }

// Args are the command-line arguments of the node's latest start.
func (n *Node) Args() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.args...)
}

func (n *Node) get(f func() string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return f()
}

// Process is the node's current process (nil before the first start).
func (n *Node) Process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	p := n.Process()
	return p != nil && !p.Exited()
}

// Paused reports whether the node is stopped with SIGSTOP.
func (n *Node) Paused() bool {
	p := n.Process()
	return p != nil && !p.Exited() && p.Paused()
}

func (n *Node) wantRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running
}

func (n *Node) describe() string {
	p := n.Process()
	if p == nil {
		return "never started"
	}
	s := fmt.Sprintf("pid %d, %s", p.Pid(), p.ExitString())
	if p.Paused() && !p.Exited() {
		s += ", paused"
	}
	return s
}

// Conn is a gRPC connection to the node (reconnecting quickly after a
// restart), for raw calls. The harness owns it; do not close it.
func (n *Node) Conn() (*grpc.ClientConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		return n.conn, nil
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}),
	}
	if n.c.opts.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(n.c.opts.Token)))
	}
	conn, err := grpc.NewClient(n.grpcAddr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", n.id, n.grpcAddr, err)
	}
	n.conn = conn
	return conn, nil
}

func (n *Node) closeConn() {
	n.mu.Lock()
	conn := n.conn
	n.conn = nil
	n.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// Admin is the node's AdminService over Conn.
func (n *Node) Admin() (factstrv1.AdminServiceClient, error) {
	conn, err := n.Conn()
	if err != nil {
		return nil, err
	}
	return factstrv1.NewAdminServiceClient(conn), nil
}

// Status asks the node for its AdminService status.
func (n *Node) Status(ctx context.Context) (*factstrv1.StatusResponse, error) {
	a, err := n.Admin()
	if err != nil {
		return nil, err
	}
	return a.Status(ctx, &factstrv1.StatusRequest{})
}

func (n *Node) baseArgs() []string {
	a := []string{"serve",
		"--node-id", n.id,
		"--data-dir", n.dataDir,
		"--grpc-addr", n.grpcAddr,
		"--raft-addr", n.raftAddr,
		"--gossip-addr", n.gossipAddr,
		"--http-addr", n.httpAddr,
		"--bootstrap-expect", strconv.Itoa(n.c.opts.Nodes),
	}
	if len(n.join) > 0 {
		a = append(a, "--join", strings.Join(n.join, ","))
	}
	a = append(a, FastRaftArgs...)
	a = append(a, n.c.opts.Args...)
	return append(a, n.c.opts.NodeArgs[n.index]...)
}

// start launches the process with extra args after the base ones.
func (n *Node) start(extra []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("%s is still running (pid %d)", n.id, n.proc.Pid())
	}
	args := append(n.baseArgs(), extra...)
	oldGRPC := n.grpcAddr
	for flag, field := range map[string]*string{
		"node-id": &n.id, "data-dir": &n.dataDir, "grpc-addr": &n.grpcAddr, "raft-addr": &n.raftAddr, "gossip-addr": &n.gossipAddr,
		"http-addr": &n.httpAddr,
	} {
		if v, ok := lastFlag(args, flag); ok {
			*field = v
		}
	}
	if n.grpcAddr != oldGRPC && n.conn != nil {
		_ = n.conn.Close()
		n.conn = nil
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== testcluster %s: starting %s %s\n", time.Now().Format(time.RFC3339Nano), n.c.bin, strings.Join(args, " "))
	cmd := exec.Command(n.c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(CleanEnv(), n.c.opts.Env...)
	p, err := spawn(n.id, cmd)
	if err != nil {
		return err
	}
	n.proc, n.args, n.running = p, args, true
	return nil
}

// lastFlag returns the value of the last --name / -name (with = or a
// separate value) in args.
func lastFlag(args []string, name string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			if k == name {
				val, found = v, true
			}
			continue
		}
		if a == name && i+1 < len(args) {
			val, found = args[i+1], true
			i++
		}
	}
	return val, found
}

func (n *Node) markDown() {
	n.mu.Lock()
	n.running = false
	n.mu.Unlock()
}

// Kill sends SIGKILL and waits for the process to die.
func (n *Node) Kill() error {
	p := n.Process()
	if p == nil {
		return fmt.Errorf("%s was never started", n.id)
	}
	n.markDown()
	return p.Kill()
}

// Stop sends SIGTERM and waits (up to Options.StopTimeout, then SIGKILL).
// It returns an error when the node did not exit with code 0 in time.
func (n *Node) Stop() error {
	p := n.Process()
	if p == nil {
		return fmt.Errorf("%s was never started", n.id)
	}
	n.markDown()
	if p.Exited() {
		return nil
	}
	start := time.Now()
	clean, err := p.Terminate(n.c.opts.StopTimeout)
	if !clean || err != nil {
		return fmt.Errorf("stop %s (after %v): %w", n.id, time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}

// Restart starts the node again with the same data directory, ports and
// flags plus extraArgs (which may override them, e.g. --grpc-addr; the
// other nodes' --join lists keep this node's first gossip address). A node
// still running is stopped first (SIGTERM). Restart does not wait for the
// node to be ready; use Cluster.WaitReady.
func (n *Node) Restart(extraArgs ...string) error {
	if n.Running() {
		if err := n.Stop(); err != nil {
			return err
		}
	}
	return n.start(extraArgs)
}

// Pause stops the process with SIGSTOP. Paused nodes are left out of
// WaitReady and Leader.
func (n *Node) Pause() error {
	p := n.Process()
	if p == nil || p.Exited() {
		return fmt.Errorf("%s is not running", n.id)
	}
	return p.Pause()
}

// Resume continues a paused process (SIGCONT).
func (n *Node) Resume() error {
	p := n.Process()
	if p == nil || p.Exited() {
		return fmt.Errorf("%s is not running", n.id)
	}
	return p.Resume()
}

// bearer sends a token on every call, over plaintext too (loopback).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
