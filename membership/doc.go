// Package membership is the gossip layer of a FACTSTR node: it finds the
// other nodes, tracks who is alive and what they announce about themselves,
// and decides whether this node takes part in bootstrapping a new Raft
// cluster. It never touches Raft; the caller does, with what this package
// reports.
//
// It is built on hashicorp/memberlist (SWIM gossip over UDP with TCP
// push/pull). Each node gossips a Meta: its NodeID (also the memberlist node
// name), the addresses peers dial for Raft and gRPC, the incarnation of its
// data directory, its version, the ClusterID it belongs to, its
// BootstrapExpect and whether it has Raft state.
//
// # Lifecycle
//
//	inc, _ := membership.IncarnationFile(dataDir)
//	m, err := membership.Start(ctx, membership.Config{BindAddr: ..., Join: ..., Meta: ...})
//	servers, err := m.WaitBootstrap(ctx, 3) // or errors.Is(err, ErrNoBootstrap)
//	... raft.BootstrapCluster(servers) on every node that got servers ...
//	m.UpdateMeta(ctx, meta with ClusterID and HasRaftState)
//	... on an admin "leave": m.Leave(timeout); then, always: m.Shutdown()
//
// Start returns once gossip is listening; joining the seeds happens in the
// background and is retried until a seed answers. Seeds may be DNS names
// (a Kubernetes headless Service): every address a name resolves to is
// tried, and names are resolved again on every retry, so pods that become
// resolvable later are found. On Kubernetes, set publishNotReadyAddresses on
// the headless Service and podManagementPolicy: Parallel, or pods that are
// not ready yet (none is, before the cluster exists) never find each other:
// the Service's DNS lists only ready pods, and a StatefulSet with the
// default OrderedReady policy starts pod 1 only once pod 0 is ready.
//
// # Bootstrap
//
// WaitBootstrap applies Consul's guards: never bootstrap if this node or any
// member seen has Raft state or a ClusterID (ErrNoBootstrap: wait to be
// added instead); never while an alive member has a different non-zero
// BootstrapExpect; and only once exactly BootstrapExpect alive members with
// that value are seen. Those members, sorted by NodeID, are the initial
// servers; every node that decides computes the same list. The caller must
// then publish ClusterID and HasRaftState with UpdateMeta so later nodes
// see that a cluster exists.
//
// # Identity
//
// The incarnation (IncarnationFile) changes when a data directory is wiped,
// so a node that comes back under the same NodeID with no Raft state is
// recognised (Event.IncarnationChanged) and can be re-added as a new server
// rather than trusted with a vote it no longer remembers. Two live nodes
// claiming one NodeID from different addresses are reported by memberlist as
// a conflict: logged, counted (Conflicts) and published as EventConflict;
// memberlist keeps the first. A node whose meta cannot be decoded, or whose
// meta names another node, is ignored altogether.
//
// # Member states and events
//
// Members reports every known member, this node included, as Alive, Dead
// (failed) or Left (left on purpose). memberlist reports a departure without
// saying whether the node failed or left, so Leave first gossips a
// "leaving" flag in the meta and only then leaves; peers that saw the flag
// report Left, others Dead. memberlist does not expose suspicion, so
// StateSuspect is never reported in this version.
//
// Subscribe delivers Join, Update, Leave, Fail and Conflict events without
// ever blocking memberlist: a subscriber whose buffer is full loses events,
// counted in DroppedEvents. Events are prompts; Members is the truth.
//
// # Timing
//
// Defaults are memberlist.DefaultLANConfig with DeadNodeReclaimTime set to
// DefaultDeadNodeReclaimTime, so a pod restarted with a new IP gets its name
// back soon after peers declare the old address dead; the background join
// re-announces the node to speed that up. Config.Tune adjusts anything else;
// FastTimings makes tests converge in milliseconds.
//
// Leave is for removing a node for good. A rolling restart should only call
// Shutdown: the node is then seen to fail and come back, and Raft's
// configuration keeps its size (hashicorp/consul-helm#764).
package membership
