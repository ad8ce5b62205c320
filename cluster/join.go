package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/membership"
)

// joiner makes a started node part of a cluster: it bootstraps a new one
// when this node is one of the first Config.BootstrapExpect nodes gossip
// finds, and otherwise waits for the leader to add it and learns the
// cluster id from the leader. Either way the cluster id is recorded in the
// data directory and gossiped, so no peer ever bootstraps a second cluster
// beside this one.
type joiner struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	ml    *membership.Membership
	votes *voteGate
	ident *identity
	// peerStatus asks a peer's NodeStatus (its cluster id).
	peerStatus func(ctx context.Context, addr string) (*peerv1.NodeStatusResponse, error)
}

// setClusterID records the cluster id in the data directory and gossips it
// together with the fact that this node now has Raft state, so no peer
// ever bootstraps a second cluster next to this one.
func (j *joiner) setClusterID(ctx context.Context, id string) error {
	recorded, err := j.ident.recordClusterID(id)
	if err != nil || !recorded {
		return err
	}
	meta := j.ml.LocalMeta()
	meta.ClusterID, meta.HasRaftState = id, true
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := j.ml.UpdateMeta(ctx, meta); err != nil {
		j.log.Warn("gossip cluster id", "error", err)
	}
	j.log.Info("node belongs to cluster", "cluster_id", id)
	return nil
}

// learnClusterID asks the leader for the cluster id once a node that joined
// (rather than bootstrapped) has a leader.
func (j *joiner) learnClusterID(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for j.ident.ClusterID() == "" {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, lid := j.raft.LeaderWithID()
		if lid == "" || string(lid) == j.cfg.NodeID {
			continue
		}
		m, ok := j.ml.Lookup(string(lid))
		if !ok || m.Meta.GRPCAddr == "" {
			continue
		}
		st, err := j.peerStatus(ctx, m.Meta.GRPCAddr)
		if err != nil || st.GetClusterId() == "" {
			continue
		}
		if err := j.setClusterID(ctx, st.GetClusterId()); err != nil {
			j.log.Error("cluster id", "error", err)
			return
		}
	}
}

// bootstrap forms the cluster once, if this node is one of the first
// BootstrapExpect nodes; otherwise the leader adds it.
func (j *joiner) bootstrap(ctx context.Context, wg *sync.WaitGroup, hasState bool) {
	defer wg.Done()
	if hasState || j.cfg.BootstrapExpect == 0 {
		return
	}
	members, err := j.ml.WaitBootstrap(ctx, j.cfg.BootstrapExpect)
	if err != nil {
		if !errors.Is(err, membership.ErrNoBootstrap) && ctx.Err() == nil {
			j.log.Error("bootstrap failed", "error", err)
		}
		return
	}
	var conf raft.Configuration
	for _, m := range members {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(m.Meta.NodeID), Address: raft.ServerAddress(m.Meta.RaftAddr),
		})
	}
	// Every node that decides passes the identical configuration, which is
	// what makes a concurrent bootstrap safe.
	switch err := j.raft.BootstrapCluster(conf).Error(); {
	case err == nil:
		// Its first configuration is its own: it never voted before.
		j.votes.may.Store(true)
	case !errors.Is(err, raft.ErrCantBootstrap):
		j.log.Error("bootstrap failed", "error", err)
		return
	}
	// The cluster id must be the same on every bootstrapping node without
	// another round of agreement: the incarnation (random, per data
	// directory) of the first server in the sorted list is.
	if err := j.setClusterID(ctx, members[0].Meta.Incarnation); err != nil {
		j.log.Error("bootstrap", "error", err)
	}
	j.log.Info("bootstrapped cluster", "servers", len(conf.Servers), "cluster_id", j.ident.ClusterID())
}
