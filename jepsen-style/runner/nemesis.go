package runner

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Nemeses lists the faults a run can schedule.
var Nemeses = map[string]string{
	"partition-leader":   "isolate the leader from every other node",
	"partition-follower": "isolate one follower (clients still reach it)",
	"partition-halves":   "random minority/majority split",
	"partition-bridge":   "one node sees both sides, the others do not see each other",
	"partition-oneway":   "one node drops packets from another (one direction only)",
	"loss":               "every node drops 25% of packets from its peers (nftables numgen)",
	"kill":               "SIGKILL a random node, restart it when the fault ends",
	"kill-leader":        "SIGKILL the leader, restart it when the fault ends",
	"kill-all":           "SIGKILL every node, restart them all when the fault ends",
	"pause":              "SIGSTOP a random node, SIGCONT when the fault ends",
	"pause-leader":       "SIGSTOP the leader beyond the election timeout",
	"pause-kill":         "pause one node, SIGKILL another, then resume and restart both",
	"power-loss":         "SIGKILL a random node and drop its un-fsynced writes (lazyfs), restart it when the fault ends",
	"power-loss-all":     "SIGKILL every node and drop their un-fsynced writes (lazyfs), restart them when the fault ends",
	"latency":            "50–110 ms (+0–40 ms jitter) each way on every Raft connection, via a proxy per node (runner/latency.go)",
	"clock-bump":         "move the leader's OccurredAt clock ±10 min (--debug-clock-offset-file, runner/clock.go)",
	"clock-strobe":       "flip the leader's OccurredAt clock between -5 and +5 min every 100 ms (runner/clock.go)",
	"membership":         "admin remove a follower (sent to another node, forwarded to the leader); at heal stop it, wait until gossip declares it failed, wipe its data dir and restart it: it rejoins as a non-voter and is promoted (runner/membership.go)",
	"membership-leader":  "admin remove the leader (it steps down, the others elect); at heal stop it, wait for gossip, wipe its data dir and restart it (runner/membership.go)",
	"membership-quick":   "as membership, but restart the wiped node at once: only its new incarnation tells it from the removed node that kept running (runner/membership.go)",
}

// CheckSchedule reports the first name in a nemesis schedule that is not
// in Nemeses.
func CheckSchedule(nemeses []string) error {
	for _, n := range nemeses {
		if _, ok := Nemeses[n]; !ok {
			return fmt.Errorf("unknown nemesis %q", n)
		}
	}
	return nil
}

// NeedsRaftProxy reports whether a nemesis schedule delays Raft traffic,
// so every node needs a latency proxy (Config.RaftProxy; latency.go).
func NeedsRaftProxy(nemeses []string) bool {
	for _, n := range nemeses {
		if n == "latency" {
			return true
		}
	}
	return false
}

// lossRule drops a quarter of the packets a node receives from its peers
// (not from the clients' address).
const lossRule = "ip saddr " + Subnet + ".0/24 ip saddr != " + ClientIP + " numgen random mod 100 < 25 drop"

type fault struct {
	desc  string
	heal  func(ctx context.Context)
	nodes []string
}

func (c *cluster) others(i int) []int { return others(c.cfg.Nodes, i) }

// others lists the nodes 1..n but i.
func others(n, i int) []int {
	var o []int
	for j := 1; j <= n; j++ {
		if j != i {
			o = append(o, j)
		}
	}
	return o
}

// grudge applies drop rules: node -> peers whose packets it drops.
func (c *cluster) grudge(ctx context.Context, g map[int][]int) error {
	for n, rules := range grudgeRules(g) {
		if err := SetRules(ctx, n, rules); err != nil {
			return err
		}
	}
	return nil
}

// grudgeRules turns a grudge (node -> peers whose packets it drops) into
// each node's nftables input rules; nodes that drop nothing get none.
func grudgeRules(g map[int][]int) map[int][]string {
	out := map[int][]string{}
	for n, peers := range g {
		if len(peers) == 0 {
			continue
		}
		var ips []string
		for _, p := range peers {
			ips = append(ips, nodeIP(p))
		}
		out[n] = []string{fmt.Sprintf("ip saddr { %s } drop", strings.Join(ips, ", "))}
	}
	return out
}

func (c *cluster) healNet(ctx context.Context) {
	for i := 1; i <= c.cfg.Nodes; i++ {
		if err := SetRules(ctx, i, nil); err != nil {
			c.note("heal %s: %v", nsName(i), err)
		}
	}
}

func (c *cluster) pickLeader(ctx context.Context, rng *rand.Rand) int {
	if l := c.leader(ctx); l > 0 {
		return l
	}
	return 1 + rng.Intn(c.cfg.Nodes)
}

func (c *cluster) isolate(ctx context.Context, i int) error {
	return c.grudge(ctx, isolation(c.cfg.Nodes, i))
}

// isolation is the grudge that cuts node i off from the other n-1 nodes
// in both directions.
func isolation(n, i int) map[int][]int {
	g := map[int][]int{i: others(n, i)}
	for _, j := range others(n, i) {
		g[j] = []int{i}
	}
	return g
}

// halves splits nodes 1..n into a minority of (n-1)/2 nodes (the first of
// perm, a permutation of 0..n-1) and the majority, which drop each
// other's packets.
func halves(n int, perm []int) (map[int][]int, string) {
	minority := map[int]bool{}
	for _, p := range perm[:(n-1)/2] {
		minority[p+1] = true
	}
	g := map[int][]int{}
	var a, b []string
	for i := 1; i <= n; i++ {
		if minority[i] {
			a = append(a, fmt.Sprintf("n%d", i))
		} else {
			b = append(b, fmt.Sprintf("n%d", i))
		}
		for j := 1; j <= n; j++ {
			if minority[i] != minority[j] {
				g[i] = append(g[i], j)
			}
		}
	}
	return g, fmt.Sprintf("partition {%s} | {%s}", strings.Join(a, ","), strings.Join(b, ","))
}

// bridge keeps node perm[0]+1 connected to everyone and splits the others
// (perm a permutation of 0..n-1) into two halves that do not see each
// other.
func bridge(n int, perm []int) (map[int][]int, string) {
	br := perm[0] + 1
	var rest []int
	for _, p := range perm[1:] {
		rest = append(rest, p+1)
	}
	sort.Ints(rest)
	half := len(rest) / 2
	g := map[int][]int{}
	for _, x := range rest[:half] {
		g[x] = append(g[x], rest[half:]...)
	}
	for _, x := range rest[half:] {
		g[x] = append(g[x], rest[:half]...)
	}
	return g, fmt.Sprintf("bridge: n%d sees %v and %v, which do not see each other", br, rest[:half], rest[half:])
}

func (c *cluster) startFault(ctx context.Context, kind string, rng *rand.Rand) (*fault, error) {
	n := c.cfg.Nodes
	netHeal := func(ctx context.Context) { c.healNet(ctx) }
	switch kind {
	case "partition-leader":
		l := c.pickLeader(ctx, rng)
		return &fault{desc: fmt.Sprintf("partition {n%d} | rest (leader isolated)", l), heal: netHeal}, c.isolate(ctx, l)
	case "partition-follower":
		l := c.pickLeader(ctx, rng)
		f := c.others(l)[rng.Intn(n-1)]
		return &fault{desc: fmt.Sprintf("partition {n%d} | rest (follower isolated, leader n%d)", f, l), heal: netHeal}, c.isolate(ctx, f)
	case "partition-halves":
		g, desc := halves(n, rng.Perm(n))
		return &fault{desc: desc, heal: netHeal}, c.grudge(ctx, g)
	case "partition-bridge":
		g, desc := bridge(n, rng.Perm(n))
		return &fault{desc: desc, heal: netHeal}, c.grudge(ctx, g)
	case "partition-oneway":
		l := c.pickLeader(ctx, rng)
		f := c.others(l)[rng.Intn(n-1)]
		// the follower stops hearing the leader; the leader still hears it
		return &fault{desc: fmt.Sprintf("one-way: n%d drops packets from leader n%d", f, l), heal: netHeal}, c.grudge(ctx, map[int][]int{f: {l}})
	case "loss":
		for i := 1; i <= n; i++ {
			if err := SetRules(ctx, i, []string{lossRule}); err != nil {
				return nil, err
			}
		}
		return &fault{desc: "25% packet loss between nodes", heal: netHeal}, nil
	case "kill", "kill-leader":
		i := 1 + rng.Intn(n)
		if kind == "kill-leader" {
			i = c.pickLeader(ctx, rng)
		}
		nd := c.nodes[i-1]
		nd.kill()
		return &fault{desc: fmt.Sprintf("SIGKILL n%d", i), heal: func(context.Context) {
			if err := nd.start(); err != nil {
				c.note("restart n%d: %v", i, err)
			}
		}}, nil
	case "kill-all":
		for _, nd := range c.nodes {
			nd.kill()
		}
		return &fault{desc: "SIGKILL all nodes", heal: func(context.Context) {
			for _, nd := range c.nodes {
				if err := nd.start(); err != nil {
					c.note("restart %s: %v", nd.name, err)
				}
			}
		}}, nil
	case "pause", "pause-leader":
		i := 1 + rng.Intn(n)
		if kind == "pause-leader" {
			i = c.pickLeader(ctx, rng)
		}
		nd := c.nodes[i-1]
		if err := nd.signal(syscall.SIGSTOP); err != nil {
			return nil, err
		}
		return &fault{desc: fmt.Sprintf("SIGSTOP n%d", i), heal: func(context.Context) { _ = nd.signal(syscall.SIGCONT) }}, nil
	case "power-loss", "power-loss-all":
		return c.powerLoss(kind, rng)
	case "pause-kill":
		perm := rng.Perm(n)
		p, k := c.nodes[perm[0]], c.nodes[perm[1]]
		if err := p.signal(syscall.SIGSTOP); err != nil {
			return nil, err
		}
		k.kill()
		return &fault{desc: fmt.Sprintf("SIGSTOP %s + SIGKILL %s", p.name, k.name), heal: func(context.Context) {
			_ = p.signal(syscall.SIGCONT)
			if err := k.start(); err != nil {
				c.note("restart %s: %v", k.name, err)
			}
		}}, nil
	case "membership", "membership-leader", "membership-quick":
		return c.membershipFault(ctx, kind, rng)
	case "latency":
		return c.latencyFault(ctx, rng)
	case "clock-bump":
		return c.clockBump(ctx, rng)
	case "clock-strobe":
		return c.clockStrobe(ctx, rng)
	}
	return nil, fmt.Errorf("unknown nemesis %q", kind)
}

// nemesis runs the schedule until ctx ends: warm-up, then fault / heal
// cycles over cfg.Nemeses in order. The active fault is always healed.
func (c *cluster) nemesis(ctx context.Context, rng *rand.Rand) {
	if len(c.cfg.Nemeses) == 0 {
		return
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	if !sleep(5 * time.Second) {
		return
	}
	for k := 0; ; k++ {
		kind := c.cfg.Nemeses[k%len(c.cfg.Nemeses)]
		bg := context.Background()
		op := c.rec.Invoke(-1, "nemesis", "", history.FNemesis, &history.Value{Fault: kind})
		f, err := c.startFault(bg, kind, rng)
		if err != nil {
			c.note("nemesis %s failed to start: %v", kind, err)
			if f == nil {
				c.rec.Complete(op, -1, "nemesis", "", history.FNemesis, history.Fail, nil, err)
				if !sleep(c.cfg.HealFor) {
					return
				}
				continue
			}
		}
		c.note("fault start: %s", f.desc)
		ok := sleep(c.cfg.FaultFor)
		f.heal(bg)
		c.rec.Complete(op, -1, "nemesis", "", history.FNemesis, history.OK, &history.Value{Fault: f.desc}, nil)
		c.note("fault end: %s", f.desc)
		if !ok || !sleep(c.cfg.HealFor) {
			return
		}
	}
}
