// Package cluster is the replicated FACTSTR store: a Node starts or joins a
// Raft cluster and implements contract.EventStore in-process on any node.
//
// Writes (appends, conditional appends, durable cursor moves and name
// leases) are Raft log entries applied by package fsm to a bbolt store, so
// sequence numbers and AppendIf checks are linearizable. A follower forwards
// writes to the leader over the peer gRPC service. Reads (Query and the start
// of every stream) are linearizable on every node by default: the node gets a
// read index from the leader (confirmed with VerifyLeader, only once the
// leader committed an entry of its own term), waits until its own state
// machine applied that index, and then reads locally. Concurrent read-index
// requests share one confirmation round.
//
// Live streams on a node are fed by that node's state machine after apply.
// A durable stream's cursor advances through the Raft log, and one durable
// name is held by one subscriber in the whole cluster.
package cluster
