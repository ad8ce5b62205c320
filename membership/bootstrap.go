package membership

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/factstr/factstr-go/internal/configerr"
)

// ErrNoBootstrap means this node must not bootstrap a Raft cluster: it, or a
// member it has seen, already has Raft state or belongs to a cluster, or it
// is configured never to bootstrap. The caller starts Raft without
// bootstrapping and waits to be added by the existing cluster's leader.
var ErrNoBootstrap = errors.New("membership: must not bootstrap; wait to be added to the existing cluster")

// WaitBootstrap blocks until it can decide whether this node takes part in
// bootstrapping a new Raft cluster. It applies Consul's guards
// (agent/consul/server_serf.go maybeBootstrap):
//
//   - It returns ErrNoBootstrap at once if this node HasRaftState, has a
//     ClusterID or has BootstrapExpect 0, and as soon as any member it knows
//     (alive or not) HasRaftState or has a ClusterID: a cluster exists, and
//     a second one must not be created next to it.
//   - An alive member with a different non-zero BootstrapExpect is a
//     misconfiguration. It is logged at Error and blocks the decision.
//   - Once exactly expect alive members with BootstrapExpect == expect are
//     seen, it returns them sorted by NodeID. Every node that decides sees
//     the same set, so every node passes the same configuration to
//     raft.BootstrapCluster, which is safe.
//   - More than expect such members also blocks, with an Error log: with
//     that many candidates, nodes that each saw a different subset of size
//     expect would bootstrap separate clusters.
//
// expect must equal this node's Meta.BootstrapExpect: that is what peers
// compare against. WaitBootstrap returns ctx's error (wrapped, with what it
// was still waiting for) when ctx ends, and ErrShutdown after Shutdown.
//
// After bootstrapping, the caller should UpdateMeta with HasRaftState and
// ClusterID, so nodes that start later get ErrNoBootstrap.
func (m *Membership) WaitBootstrap(ctx context.Context, expect int) ([]Member, error) {
	local := m.LocalMeta()
	switch {
	case expect < 1:
		return nil, configerr.New(ErrInvalidConfig, "expect", fmt.Sprintf("%d is not a server count; pass Meta.BootstrapExpect (at least 1)", expect))
	case local.HasRaftState:
		return nil, fmt.Errorf("%w: this node has existing Raft state", ErrNoBootstrap)
	case local.ClusterID != "":
		return nil, fmt.Errorf("%w: this node already belongs to cluster %q", ErrNoBootstrap, local.ClusterID)
	case local.BootstrapExpect == 0:
		return nil, fmt.Errorf("%w: this node has BootstrapExpect 0 and never bootstraps", ErrNoBootstrap)
	case local.BootstrapExpect != expect:
		return nil, configerr.New(ErrInvalidConfig, "expect", fmt.Sprintf(
			"%d differs from Meta.BootstrapExpect %d, which is what peers compare against; pass the same value", expect, local.BootstrapExpect))
	}

	logged := make(map[string]bool)
	lastWait := ""
	for {
		select {
		case <-m.shutdownCh:
			return nil, ErrShutdown
		default:
		}
		changed := m.view.changes()
		// Read the view after taking the change channel, so a change in
		// between is not missed.
		v := decideBootstrap(m.name, expect, m.Members())

		for _, p := range v.problems {
			if !logged[p] {
				logged[p] = true
				m.logger.Error("bootstrap blocked: " + p)
			}
		}
		switch {
		case v.err != nil:
			m.logger.Info("not bootstrapping", "reason", v.err)
			return nil, v.err
		case v.servers != nil:
			ids := make([]string, len(v.servers))
			for i, s := range v.servers {
				ids[i] = s.Meta.NodeID
			}
			m.logger.Info("bootstrap decided", "servers", ids)
			return v.servers, nil
		}
		if v.waiting != lastWait {
			lastWait = v.waiting
			m.logger.Info("waiting to bootstrap", "reason", v.waiting)
		}

		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("membership: bootstrap undecided (%s): %w", v.waiting, ctx.Err())
		case <-m.shutdownCh:
			return nil, ErrShutdown
		case <-changed:
		}
	}
}

// bootstrapVerdict is decideBootstrap's answer: servers (decided), err
// (final refusal) or waiting (undecided, why). problems are
// misconfigurations to log loudly.
type bootstrapVerdict struct {
	servers  []Member
	err      error
	waiting  string
	problems []string
}

// decideBootstrap is WaitBootstrap's decision on one view of the members. It
// is a pure function so it can be tested on its own.
func decideBootstrap(self string, expect int, members []Member) bootstrapVerdict {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.Meta.NodeID, b.Meta.NodeID) })

	var (
		candidates []Member
		problems   []string
		selfAlive  bool
	)
	for _, mb := range members {
		who := "member " + mb.Meta.NodeID
		if mb.Meta.NodeID == self {
			who = "this node"
			selfAlive = mb.State == StateAlive
		}
		// Any member, alive or not: a cluster exists.
		if mb.Meta.ClusterID != "" {
			return bootstrapVerdict{err: fmt.Errorf("%w: %s already belongs to cluster %q", ErrNoBootstrap, who, mb.Meta.ClusterID)}
		}
		if mb.Meta.HasRaftState {
			return bootstrapVerdict{err: fmt.Errorf("%w: %s has existing Raft state", ErrNoBootstrap, who)}
		}
		if mb.State != StateAlive || mb.Meta.BootstrapExpect == 0 {
			continue
		}
		if mb.Meta.BootstrapExpect != expect {
			problems = append(problems, fmt.Sprintf(
				"member %s (%s) has BootstrapExpect %d but this node has %d; every node must be started with the same BootstrapExpect (or 0 to never bootstrap)",
				mb.Meta.NodeID, mb.Addr, mb.Meta.BootstrapExpect, expect))
			continue
		}
		candidates = append(candidates, mb)
	}
	if !selfAlive {
		return bootstrapVerdict{err: ErrLeft}
	}
	ids := func() string {
		s := make([]string, len(candidates))
		for i, c := range candidates {
			s[i] = c.Meta.NodeID
		}
		return strings.Join(s, ",")
	}
	switch {
	case len(problems) > 0:
		return bootstrapVerdict{waiting: "members disagree on BootstrapExpect", problems: problems}
	case len(candidates) < expect:
		return bootstrapVerdict{waiting: fmt.Sprintf("seen %d of %d servers (%s)", len(candidates), expect, ids())}
	case len(candidates) > expect:
		return bootstrapVerdict{
			waiting: fmt.Sprintf("seen %d servers, more than %d (%s)", len(candidates), expect, ids()),
			problems: []string{fmt.Sprintf(
				"%d alive members (%s) have BootstrapExpect %d: more than expected, so nodes that each saw a different %d of them could bootstrap separate clusters; start exactly %d such nodes and give the others BootstrapExpect 0",
				len(candidates), ids(), expect, expect, expect)},
		}
	}
	return bootstrapVerdict{servers: candidates}
}
