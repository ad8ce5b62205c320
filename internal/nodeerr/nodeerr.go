// Package nodeerr holds the errors of a cluster node that cross package
// and protocol boundaries: the replicated store returns them, and the
// wire package maps them to gRPC statuses (and back on the peer service),
// so they live below both. Package cluster exports each under its usual
// name; callers use those.
package nodeerr

import "errors"

var (
	// ErrNoLeader: the cluster has no reachable leader right now (an
	// election, a partition). Safe to retry.
	ErrNoLeader = errors.New("no leader")
	// ErrOutcomeUnknown: a write may or may not have committed (leadership
	// lost, timeout). Retrying with the same idempotency key is safe.
	ErrOutcomeUnknown = errors.New("outcome unknown, safe to retry with the same idempotency key")
	// ErrNotLeader is returned by leader-only operations on a follower.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrWrongNode: the data directory belongs to another node.
	ErrWrongNode = errors.New("data directory belongs to another node")
	// ErrUnknownNode: no server of that id is in the Raft configuration.
	ErrUnknownNode = errors.New("unknown node")
	// ErrLastVoter: removing the server would leave no voter.
	ErrLastVoter = errors.New("refusing to remove the last voter")
	// ErrWrongCluster: the node belongs to another cluster.
	ErrWrongCluster = errors.New("node belongs to another cluster")
	// ErrLeft: this node has left the cluster; use another node.
	ErrLeft = errors.New("this node has left the cluster; send requests to another node")
)
