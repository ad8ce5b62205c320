package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Membership nemeses ("membership", "membership-leader", "membership-quick").
//
// Fault: `admin remove <victim>` through the Admin API of another node (a
// follower when there is one, which forwards it to the leader). The victim
// keeps running: a removed node that still runs is deliberately kept out
// (the removal is in the replicated state, so whoever leads keeps it out),
// and a removed leader steps down (hashicorp/raft shuts its Raft down) and
// the others elect a new one.
//
// Heal, as docs/operations.md tells an operator to bring a removed node
// back ("wipe its data directory first and it joins as a non-voter, like
// any new node"): stop the node (SIGTERM), delete its data directory, start
// it with the same id and addresses and a --join list of the live members
// (no --bootstrap-expect). It comes back with a new incarnation, the leader
// adds it as a non-voter, streams it the log or a snapshot and promotes it
// once caught up. The heal waits (up to membershipRejoin) until the leader
// lists it as a voter and it has applied the leader's commit index; if it
// never does, the failed re-add is recorded and the final reads (which need
// every node to apply the barrier) report the node as not recovered.
//
// Every change is a nemesis op of its own in the history: the removal,
// whether the node stayed out for the whole fault window, and the re-add.
// The two promises (stayed out, came back) are also member_check ops,
// which the checker reports as anomalies when broken.

const membershipRejoin = 60 * time.Second

// The cluster broke a membership promise (the checker reports these; other
// failures of a step, such as no leader to ask, are only noted).
var (
	errBackTooSoon = errors.New("removed node is back in the configuration")
	errNotReadded  = errors.New("removed node was not re-added")
)

// memberOp records one membership change as a nemesis op.
func (c *cluster) memberOp(desc string, f func() (string, error)) error {
	op := c.rec.Invoke(-1, "nemesis", "", history.FNemesis, &history.Value{Fault: desc})
	res, err := f()
	// The two promises (stays out, comes back) are also checker input.
	promise := strings.Contains(desc, "stayed out") || strings.HasPrefix(desc, "re-add")
	if promise && (err == nil || errors.Is(err, errBackTooSoon) || errors.Is(err, errNotReadded)) {
		typ := history.OK
		if err != nil {
			typ = history.Fail
		}
		check := c.rec.Invoke(-1, "nemesis", "", history.FMemberCheck, &history.Value{Fault: desc})
		c.rec.Complete(check, -1, "nemesis", "", history.FMemberCheck, typ, &history.Value{Fault: desc + ": " + res}, err)
	}
	if err != nil {
		c.rec.Complete(op, -1, "nemesis", "", history.FNemesis, history.Fail, &history.Value{Fault: desc + ": " + res}, err)
		c.note("membership: %s failed: %s %v", desc, res, err)
		return err
	}
	c.rec.Complete(op, -1, "nemesis", "", history.FNemesis, history.OK, &history.Value{Fault: desc + ": " + res}, nil)
	c.note("membership: %s: %s", desc, res)
	return nil
}

// config returns the Raft configuration as node i sees it: id -> suffrage.
func (c *cluster) config(ctx context.Context, i int) (map[string]string, *factstrv1.StatusResponse, error) {
	st, err := c.status(ctx, i)
	if err != nil {
		return nil, nil, err
	}
	m := map[string]string{}
	for _, mb := range st.GetMembers() {
		m[mb.GetId()] = mb.GetSuffrage()
	}
	return m, st, nil
}

// leaderExcept is the leader all reachable nodes but skip agree on, or 0.
func (c *cluster) leaderExcept(ctx context.Context, skip int) int {
	for i := 1; i <= c.cfg.Nodes; i++ {
		if i == skip {
			continue
		}
		st, err := c.status(ctx, i)
		if err == nil && st.GetLeaderId() != "" && st.GetLeaderId() == st.GetNodeId() {
			return i
		}
	}
	return 0
}

func (c *cluster) membershipFault(ctx context.Context, kind string, rng *rand.Rand) (*fault, error) {
	l := c.leader(ctx)
	if l == 0 {
		return nil, errors.New("membership: no leader to remove a node from")
	}
	cf, _, err := c.config(ctx, l)
	if err != nil {
		return nil, err
	}
	voters := 0
	for _, s := range cf {
		if s == "voter" {
			voters++
		}
	}
	if voters < c.cfg.Nodes {
		return nil, fmt.Errorf("membership: only %d of %d nodes are voters (%v); not removing another", voters, c.cfg.Nodes, cf)
	}
	victim := l
	if kind != "membership-leader" {
		victim = c.others(l)[rng.Intn(c.cfg.Nodes-1)]
	}
	// Send the removal to a follower other than the victim, so it is
	// forwarded to the leader.
	via := 0
	for _, j := range c.others(victim) {
		if j != l {
			via = j
			break
		}
	}
	if via == 0 {
		via = l
	}
	vname := fmt.Sprintf("n%d", victim)
	role := "follower"
	if victim == l {
		role = "leader"
	}
	err = c.memberOp(fmt.Sprintf("admin remove %s (%s) sent to n%d", vname, role, via), func() (string, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.admin[via-1].AdminAt(0).Remove(rctx, &factstrv1.RemoveRequest{NodeId: vname})
			cancel()
			if err == nil {
				return "removed", nil
			}
			if time.Now().After(deadline) {
				return "gave up after 10s", err
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	if err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("admin remove %s (%s, via n%d), kept running; re-added with a wiped data directory at heal", vname, role, via)
	if victim == l {
		_ = c.memberOp(fmt.Sprintf("a new leader without removed %s", vname), func() (string, error) {
			start := time.Now()
			for time.Since(start) < 15*time.Second {
				if nl := c.leaderExcept(ctx, victim); nl > 0 {
					return fmt.Sprintf("n%d leads after %.1fs", nl, time.Since(start).Seconds()), nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return "no leader among the others after 15s", errors.New("no new leader")
		})
	}
	return &fault{desc: desc, nodes: []string{vname}, heal: func(ctx context.Context) { c.readd(ctx, victim, kind == "membership-quick") }}, nil
}

// readd checks that the victim stayed out, then brings it back as an
// operator would: stop, wipe the data directory, start with --join.
func (c *cluster) readd(ctx context.Context, victim int, quick bool) {
	vname := fmt.Sprintf("n%d", victim)
	nd := c.nodes[victim-1]
	_ = c.memberOp(fmt.Sprintf("%s stayed out of the configuration while it kept running", vname), func() (string, error) {
		l := c.leaderExcept(ctx, victim)
		if l == 0 {
			return "no leader to ask", errors.New("no leader")
		}
		cf, _, err := c.config(ctx, l)
		if err != nil {
			return fmt.Sprintf("status of leader n%d", l), err
		}
		if s, ok := cf[vname]; ok {
			return fmt.Sprintf("leader n%d lists %s as %s again before it was re-added (configuration %v)", l, vname, s, cf), errBackTooSoon
		}
		return fmt.Sprintf("leader n%d's configuration is %v", l, cf), nil
	})
	how := "stop, wait until gossip declares it failed, wipe its data directory, start it with --join"
	if quick {
		how = "stop, wipe its data directory, start it with --join at once"
	}
	_ = c.memberOp(fmt.Sprintf("re-add %s: %s", vname, how), func() (string, error) {
		before := c.gossipFailed(victim)
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		nd.stop(sctx)
		cancel()
		waited := ""
		if !quick {
			// The slow way: let gossip declare the node failed before it
			// comes back (membership-quick restarts it at once, which only
			// the new incarnation tells apart from a node that kept running).
			start := time.Now()
			for c.gossipFailed(victim) <= before && time.Since(start) < 40*time.Second {
				time.Sleep(250 * time.Millisecond)
			}
			waited = fmt.Sprintf("gossip declared it failed after %.1fs; ", time.Since(start).Seconds())
		}
		dir := nd.dataDir()
		if dir == "" {
			return "no --data-dir in the node's arguments", errors.New("cannot wipe")
		}
		if err := wipeDir(dir); err != nil { // the contents: dir may be a lazyfs mount
			return "wipe " + dir, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "mkdir " + dir, err
		}
		nd.dropFlag("--bootstrap-expect")
		if err := nd.start(); err != nil {
			return "restart", err
		}
		start := time.Now()
		last := ""
		for time.Since(start) < membershipRejoin {
			time.Sleep(500 * time.Millisecond)
			l := c.leaderExcept(ctx, 0)
			if l == 0 {
				last = "no leader"
				continue
			}
			cf, lst, err := c.config(ctx, l)
			if err != nil {
				last = err.Error()
				continue
			}
			if cf[vname] != "voter" {
				last = fmt.Sprintf("leader n%d lists %s as %q", l, vname, cf[vname])
				continue
			}
			st, err := c.status(ctx, victim)
			if err != nil {
				last = fmt.Sprintf("%s: %v", vname, err)
				continue
			}
			if st.GetAppliedIndex()+64 < lst.GetCommitIndex() {
				last = fmt.Sprintf("%s applied %d, leader committed %d", vname, st.GetAppliedIndex(), lst.GetCommitIndex())
				continue
			}
			return fmt.Sprintf("%s%s is a voter again %.1fs after the restart (leader n%d, applied %d of %d)", waited, vname, time.Since(start).Seconds(), l, st.GetAppliedIndex(), lst.GetCommitIndex()), nil
		}
		return fmt.Sprintf("%s%s not back as a caught-up voter %s after the restart (last: %s); see %s and the leader's log", waited, vname, membershipRejoin, last, nd.logPath),
			errNotReadded
	})
}

func (n *node) dataDir() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, a := range n.args {
		if a == "--data-dir" && i+1 < len(n.args) {
			return n.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			return v
		}
	}
	return ""
}

// dropFlag removes "flag value" from the node's arguments for its next start.
func (n *node) dropFlag(flag string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for i := 0; i < len(n.args); i++ {
		if n.args[i] == flag {
			i++
			continue
		}
		out = append(out, n.args[i])
	}
	n.args = out
}

// gossipFailed counts the "member failed" lines about node i in the other
// nodes' logs (an operator sees the same in the logs; admin status lists
// only members of the Raft configuration, so it does not show a removed
// node's gossip state).
func (c *cluster) gossipFailed(i int) int {
	n := 0
	needle := fmt.Sprintf("member=n%d ", i)
	for _, o := range c.others(i) {
		b, err := os.ReadFile(c.nodes[o-1].logPath)
		if err != nil {
			continue
		}
		for _, ln := range strings.Split(string(b), "\n") {
			if strings.Contains(ln, `msg="member failed"`) && strings.Contains(ln, needle) {
				n++
			}
		}
	}
	return n
}
