// Package runner runs FACTSTR nodes in network namespaces, drives a
// workload against them while nemeses break the network and the processes,
// and records the history.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Config of one run.
type Config struct {
	Name        string        `json:"name"`
	Nodes       int           `json:"nodes"`
	Duration    time.Duration `json:"duration"` // workload phase
	Workers     int           `json:"workers"`  // pinned workers (plus 2 that use every node)
	Think       time.Duration `json:"think"`    // pause between a worker's ops
	OpTimeout   time.Duration `json:"op_timeout"`
	Contexts    int           `json:"contexts"`
	Nemeses     []string      `json:"nemeses"` // see Nemeses
	FaultFor    time.Duration `json:"fault_for"`
	HealFor     time.Duration `json:"heal_for"`
	Seed        int64         `json:"seed"`
	UnsafeReads bool          `json:"unsafe_local_reads"`
	Negative    bool          `json:"negative"` // workload tuned to catch stale reads from an isolated follower
	Bin         string        `json:"bin"`
	OutDir      string        `json:"out_dir"`
	Election    time.Duration `json:"raft_election_timeout"`
	LazyFS      bool          `json:"lazyfs"` // data directories on lazyfs mounts (power-loss nemeses; powerloss.go)
	// RaftProxy puts a latency proxy in front of every node's Raft port
	// (runner/latency.go); cmd/jepsen sets it when the schedule has latency.
	RaftProxy bool   `json:"raft_proxy,omitempty"`
	ProxyBin  string `json:"proxy_bin,omitempty"` // runs `ProxyBin -proxy SPEC` (default: this executable)
}

// Outcome of Run.
type Outcome struct {
	Entries  []history.Entry
	Started  time.Time
	Finished time.Time
	Notes    []string
}

type cluster struct {
	cfg   Config
	nodes []*node
	rec   *history.Recorder
	admin []*client.Client // one per node, for status
	lfs   *lazyMounts      // lazyfs data mounts when cfg.LazyFS (powerloss.go)
	mu    sync.Mutex
	notes []string

	proxies   []*proxyProc // Raft latency proxies (runner/latency.go)
	proxyPids *pidFile

	// The nodes run as a production cluster would: Raft, gossip and the
	// peer service authenticated by a cluster key, clients over TLS with
	// the key's CA and an admin token (secure.go).
	sec *security
}

func (c *cluster) note(format string, a ...any) {
	s := fmt.Sprintf("[%6.2fs] ", float64(c.rec.Now())/1e9) + fmt.Sprintf(format, a...)
	fmt.Println(s)
	c.mu.Lock()
	c.notes = append(c.notes, s)
	c.mu.Unlock()
}

// Build compiles factstr-node (CGO_ENABLED=0) into dir.
func Build(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "factstr-node")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/factstr-node")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build factstr-node: %v: %s", err, out)
	}
	return bin, nil
}

// Run sets up the hosts, runs the workload and nemeses, heals, reads the
// final logs and tears everything down (also on error or ctx cancellation).
func Run(ctx context.Context, cfg Config) (out *Outcome, err error) {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, err
	}
	sec, err := newSecurity()
	if err != nil {
		return nil, err
	}
	rec, err := history.NewRecorder(filepath.Join(cfg.OutDir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: cfg, rec: rec, proxyPids: &pidFile{name: proxyPidFile, pids: map[int]bool{}}, sec: sec}
	out = &Outcome{Started: rec.Start()}
	defer func() {
		c.teardown()
		rec.Close()
		out.Entries = rec.Entries()
		out.Finished = time.Now()
		out.Notes = c.notes
	}()
	if err := Setup(ctx, cfg.Nodes); err != nil {
		return out, fmt.Errorf("network setup: %w", err)
	}
	c.note("hosts: bridge %s %s/24, namespaces %s1..%d", Bridge, ClientIP, NSPrefix, cfg.Nodes)
	c.note("security: cluster key on (Raft and peer mutual TLS, encrypted gossip), clients over TLS with an admin token")
	if err := c.startNodes(ctx); err != nil {
		return out, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	leader, err := c.waitLeader(wctx)
	cancel()
	if err != nil {
		return out, fmt.Errorf("cluster did not elect a leader: %w", err)
	}
	c.note("cluster up, leader %s", leader)

	// workload
	rng := rand.New(rand.NewSource(cfg.Seed))
	var ctxs []string
	for i := 0; i < cfg.Contexts; i++ {
		ctxs = append(ctxs, fmt.Sprintf("c%d", i))
	}
	var clients []*client.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	dial := func(addrs []string) *client.Client {
		cl, err := client.Dial(ctx, addrs, append(c.sec.clientOptions(), client.WithRetryTimeout(cfg.OpTimeout))...)
		if err != nil {
			panic(err)
		}
		clients = append(clients, cl)
		return cl
	}
	var all []string
	for i := 1; i <= cfg.Nodes; i++ {
		all = append(all, grpcAddr(i))
	}
	m := mix{appendIf: 35, append: 15, query: 25, tail: 10}
	if cfg.Negative {
		m = mix{appendIf: 20, append: 20, query: 35, tail: 20}
	}
	var workers []*worker
	for i := 0; i < cfg.Workers+2; i++ {
		w := &worker{name: fmt.Sprintf("w%d", i), rec: rec, rng: rand.New(rand.NewSource(rng.Int63())), proc: rec.NewProcess(),
			ctxs: ctxs, timeout: cfg.OpTimeout, mix: m, seen: map[string]uint64{}}
		if i < cfg.Workers {
			n := i%cfg.Nodes + 1
			w.node = fmt.Sprintf("n%d", n)
			w.cl = dial([]string{grpcAddr(n)})
		} else {
			w.node = "any"
			w.cl = dial(all)
		}
		workers = append(workers, w)
	}
	wlCtx, wlCancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for wlCtx.Err() == nil {
				w.step(wlCtx)
				time.Sleep(cfg.Think + time.Duration(w.rng.Int63n(int64(cfg.Think)+1)))
			}
		}(w)
	}
	consumers := []*consumer{
		{name: "all", cl: dial(all), rec: rec, rng: rand.New(rand.NewSource(rng.Int63())), failPc: 2},
		{name: "c0", ctx: "c0", cl: dial([]string{grpcAddr(cfg.Nodes)}), rec: rec, rng: rand.New(rand.NewSource(rng.Int63())), failPc: 2},
		// retries a batch twice, then parks it: fails exactly the poison batches
		{name: "park", cl: dial(all), rec: rec, rng: rand.New(rand.NewSource(rng.Int63())), park: 2},
	}
	// a consumer group keyed by context, one member pinned to each node
	group := &groupProgress{}
	for i := 1; i <= cfg.Nodes; i++ {
		consumers = append(consumers, &consumer{name: "group", group: "ctx", member: fmt.Sprintf("m%d", i), shared: group,
			cl: dial([]string{grpcAddr(i)}), rec: rec, rng: rand.New(rand.NewSource(rng.Int63())), failPc: 1})
	}
	consCtx, consCancel := context.WithCancel(ctx)
	defer consCancel()
	resub := make([]chan struct{}, len(consumers))
	var cwg sync.WaitGroup
	for i, co := range consumers {
		resub[i] = make(chan struct{}, 1)
		cwg.Add(1)
		go func(co *consumer, ch chan struct{}) { defer cwg.Done(); co.run(consCtx, ch) }(co, resub[i])
	}
	c.startLive(consCtx, dial, &cwg) // live StreamAll / StreamTo subscribers (runner/live.go)

	// nemesis
	nctx, ncancel := context.WithTimeout(ctx, cfg.Duration)
	c.nemesis(nctx, rand.New(rand.NewSource(rng.Int63())))
	<-nctx.Done()
	ncancel()
	wlCancel()
	wg.Wait()
	if ctx.Err() != nil {
		return out, ctx.Err()
	}

	// final phase
	c.note("healing: network, paused and dead nodes")
	c.healAll(ctx)
	barrier, err := c.barrier(ctx)
	if err != nil {
		c.note("barrier append failed: %v", err)
	} else {
		c.note("barrier append committed at seq %d", barrier)
	}
	c.finalReads(ctx, barrier)
	// consumers catch up
	deadline := time.Now().Add(30 * time.Second)
	forced := false
	for time.Now().Before(deadline) && barrier > 0 {
		done := consumers[0].lastHandled() >= barrier
		if done {
			break
		}
		if !forced && time.Until(deadline) < 18*time.Second {
			forced = true
			for _, ch := range resub {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.waitConsumers(consumers, deadline) // let the others finish too (catchup.go)
	c.note("consumer 'all' handled up to seq %d, 'c0' up to %d, 'park' passed %d", consumers[0].lastHandled(), consumers[1].lastHandled(), consumers[2].lastHandled())
	c.readParked(ctx, consumers[2])
	consCancel()
	cwg.Wait()
	return out, nil
}

func grpcAddr(i int) string { return fmt.Sprintf("%s:%d", nodeIP(i), GRPCPort) }

func (c *cluster) startNodes(ctx context.Context) error {
	pf := &pidFile{pids: map[int]bool{}}
	if err := c.startProxies(ctx); err != nil { // only with cfg.RaftProxy
		return err
	}
	for i := 1; i <= c.cfg.Nodes; i++ {
		var join []string
		for j := 1; j <= c.cfg.Nodes; j++ {
			if j != i {
				join = append(join, fmt.Sprintf("%s:%d", nodeIP(j), GossipPrt))
			}
		}
		dataDir := filepath.Join(StateDir, "data", fmt.Sprintf("n%d", i))
		_ = os.RemoveAll(dataDir)
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return err
		}
		if err := c.mountData(i, dataDir); err != nil {
			return err
		}
		args := []string{"serve", "--node-id", fmt.Sprintf("n%d", i), "--data-dir", dataDir,
			"--grpc-addr", grpcAddr(i), "--raft-addr", fmt.Sprintf("%s:%d", nodeIP(i), RaftPort),
			"--gossip-addr", fmt.Sprintf("%s:%d", nodeIP(i), GossipPrt), "--advertise-addr", nodeIP(i),
			"--bootstrap-expect", fmt.Sprint(c.cfg.Nodes), "--join", strings.Join(join, ","),
			"--raft-heartbeat-timeout", c.cfg.Election.String(), "--raft-election-timeout", c.cfg.Election.String(),
			"--shutdown-timeout", "5s"}
		if c.cfg.UnsafeReads {
			args = append(args, "--unsafe-local-reads")
		}
		args = append(args, c.nodeExtraArgs(i)...) // clock offset file, proxied Raft address
		n := &node{i: i, name: fmt.Sprintf("n%d", i), args: args, env: c.sec.nodeEnv(), bin: c.cfg.Bin, logPath: filepath.Join(c.cfg.OutDir, fmt.Sprintf("n%d.log", i)), pids: pf}
		c.nodes = append(c.nodes, n)
		if err := n.start(); err != nil {
			return fmt.Errorf("start n%d: %w", i, err)
		}
		cl, err := client.Dial(ctx, []string{grpcAddr(i)}, c.sec.clientOptions()...)
		if err != nil {
			return err
		}
		c.admin = append(c.admin, cl)
	}
	return nil
}

func (c *cluster) status(ctx context.Context, i int) (*factstrv1.StatusResponse, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.admin[i-1].AdminAt(0).Status(sctx, &factstrv1.StatusRequest{})
}

// leader returns the node index every reachable node agrees leads, or 0.
func (c *cluster) leader(ctx context.Context) int {
	for i := 1; i <= c.cfg.Nodes; i++ {
		st, err := c.status(ctx, i)
		if err == nil && st.GetLeaderId() == st.GetNodeId() && st.GetLeaderId() != "" {
			return i
		}
	}
	return 0
}

func (c *cluster) waitLeader(ctx context.Context) (string, error) {
	for {
		if l := c.leader(ctx); l > 0 {
			return fmt.Sprintf("n%d", l), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *cluster) healAll(ctx context.Context) {
	for i, n := range c.nodes {
		if err := SetRules(ctx, i+1, nil); err != nil {
			c.note("heal rules on %s: %v", n.name, err)
		}
		if n.running() {
			_ = n.signal(syscall.SIGCONT)
		} else if err := n.start(); err != nil {
			c.note("restart %s: %v", n.name, err)
		}
	}
}

// barrier appends one event and retries until it commits (30 s).
func (c *cluster) barrier(ctx context.Context) (uint64, error) {
	var all []string
	for i := 1; i <= c.cfg.Nodes; i++ {
		all = append(all, grpcAddr(i))
	}
	cl, err := client.Dial(ctx, all, append(c.sec.clientOptions(), client.WithRetryTimeout(5*time.Second))...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return c.appendBarrier(ctx, cl)
}

// appendBarrier is barrier on a dialled client.
func (c *cluster) appendBarrier(ctx context.Context, cl *client.Client) (uint64, error) {
	deadline := time.Now().Add(45 * time.Second)
	key := fmt.Sprintf("barrier-%d", time.Now().UnixNano())
	// The barrier is an append like any other in the history: an append
	// the workload left in flight may commit before or after it, and the
	// linearizability check must see it to place both.
	proc := c.rec.NewProcess()
	op := c.rec.Invoke(proc, "final", "any", history.FAppend, &history.Value{Ctx: "barrier", IDs: []string{key}, Key: key})
	for {
		bctx, cancel := context.WithTimeout(contract.WithIdempotencyKey(ctx, key), 5*time.Second)
		res, err := cl.Append(bctx, []contract.NewEvent{{Type: "barrier", Payload: json.RawMessage(`{"ctx":"barrier","id":"` + key + `"}`)}})
		cancel()
		if err == nil {
			c.rec.Complete(op, proc, "final", "any", history.FAppend, history.OK, &history.Value{First: res.FirstSequenceNumber, Last: res.LastSequenceNumber}, nil)
			return res.LastSequenceNumber, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.rec.Complete(op, proc, "final", "any", history.FAppend, history.Info, nil, err)
			return 0, err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// finalReads reads the whole log from every node, each waiting until it
// has applied the barrier.
func (c *cluster) finalReads(ctx context.Context, barrier uint64) {
	for i := 1; i <= c.cfg.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		proc := c.rec.NewProcess()
		op := c.rec.Invoke(proc, "final", name, history.FFinalRead, &history.Value{MinApplied: barrier})
		var res contract.QueryResult
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for {
			rctx, cancel := context.WithTimeout(contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: barrier}), 10*time.Second)
			res, err = c.admin[i-1].Query(rctx, contract.EventQuery{})
			cancel()
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			c.rec.Complete(op, proc, "final", name, history.FFinalRead, history.Fail, nil, err)
			c.note("final read on %s failed: %v", name, err)
			continue
		}
		evs := withOccurredAt(toEvents(res.Events), res.Events)
		c.rec.Complete(op, proc, "final", name, history.FFinalRead, history.OK, &history.Value{Events: evs, CV: res.CurrentContextVersion}, nil)
		c.note("final read on %s: %d events", name, len(evs))
	}
}

func (c *cluster) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cl := range c.admin {
		cl.Close()
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *node) { defer wg.Done(); n.stop(ctx) }(n)
	}
	wg.Wait()
	c.stopProxies()
	c.unmountData()
	for _, d := range Cleanup(c.cfg.Nodes + 2) {
		c.note("cleanup: %s", d)
	}
	_ = os.RemoveAll(filepath.Join(StateDir, "data")) // node logs stay in the output directory
}

var errNoLeader = errors.New("no leader")
