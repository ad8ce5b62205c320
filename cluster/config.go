package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/configerr"
	"github.com/factstr/factstr-go/raftlog"
)

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid cluster config")

// Kinds of Config.OnPropose.
const (
	ProposeEntry   = "entry"
	ProposeForward = "forward"
)

// Config configures a Node. Validate is the one place it is checked.
type Config struct {
	NodeID  string
	DataDir string

	RaftAddr          string // bind host:port for Raft
	RaftAdvertiseAddr string // what peers dial; default RaftAddr
	GossipAddr        string // bind host:port for memberlist
	GossipAdvertise   string // default GossipAddr
	// GRPCAddr is where peers reach this node's gRPC server (PeerService).
	GRPCAddr string

	// BootstrapExpect: the first N nodes that see each other bootstrap the
	// cluster, exactly once. 0: never bootstrap, wait to be added.
	BootstrapExpect int
	// Join lists gossip addresses (host:port, DNS names allowed) of peers.
	Join []string

	Limits contract.Limits
	// Raft tunes the Raft plumbing; NodeID, DataDir and addresses are
	// filled in from the fields above. The zero value means
	// raftlog.DefaultConfig(); to tune, start from DefaultConfig.
	Raft raftlog.Config
	// FastGossip shrinks memberlist intervals (tests on loopback).
	FastGossip bool

	// ApplyTimeout bounds a write without a ctx deadline (default 10s).
	ApplyTimeout time.Duration
	// ReadTimeout bounds a read-index wait without a ctx deadline (default 10s).
	ReadTimeout time.Duration
	// IdempotencyRetention is how long appended idempotency keys are kept
	// (default 1h).
	IdempotencyRetention time.Duration
	// PromoteAfter is how long a caught-up non-voter stays one before the
	// leader promotes it (default 2s).
	PromoteAfter time.Duration

	// DeadServerCleanup, when positive, makes the leader remove a server
	// that gossip has reported failed for longer than this, never taking the
	// voter count below a quorum of the configured cluster size. Off by
	// default: a node that is down for maintenance or a long network
	// partition would otherwise silently shrink the cluster, and a
	// StatefulSet pod comes back under the same id anyway.
	DeadServerCleanup time.Duration

	// GossipKey encrypts and authenticates gossip (16, 24 or 32 bytes, the
	// same on every node). Nil: gossip in the clear.
	GossipKey []byte

	// PeerDialOptions are used to dial other nodes' gRPC servers (TLS).
	PeerDialOptions []grpc.DialOption
	// Clock stamps OccurredAt on the leader (default time.Now). Fault tests
	// inject jumps here.
	Clock func() time.Time
	// UnsafeLocalReads serves default reads from local state without the
	// read index. Debug only: it exists so the fault suite can prove that it
	// catches stale reads.
	UnsafeLocalReads bool
	// MinFreeDisk is the free-space watermark of DataDir's file system, in
	// bytes: while less is available, Append and AppendIf on this node fail
	// with diskguard.ErrNoSpace (gRPC ResourceExhausted) instead of letting
	// the state machine run out of space mid-apply. 0 turns it off;
	// factstr-node defaults to diskguard.DefaultMinFree.
	MinFreeDisk uint64
	// StreamSubscriberBytes, StreamNodeBytes and StreamStallTimeout bound
	// what stream subscriptions hold (streams.Config's SubscriberBytes,
	// NodeBytes and StallTimeout; zero: the package defaults, no node
	// bound, no stall timeout).
	StreamSubscriberBytes int64
	StreamNodeBytes       int64
	StreamStallTimeout    time.Duration
	// OnApply, if set, is called after every batch the state machine
	// applies, with its entry and command counts and how long it took
	// (metrics; see fsm.FSM.OnApply). It must not block.
	OnApply func(entries, commands int, took time.Duration)
	// MaxInflightProposals bounds the Raft entries a leader has proposed
	// and not yet applied (default 1). Fewer means larger entries (one
	// fsync each, on every node), more means less waiting on a lightly
	// loaded node.
	MaxInflightProposals int
	// MaxInflightForwards bounds the batches a follower has forwarded to
	// the leader and not yet had answered (default 4). The leader merges
	// them into its own entries, so this changes how long commands wait
	// on the follower, not how many entries the log gets.
	MaxInflightForwards int
	// OnPropose, if set, is called for every coalesced batch: kind
	// ProposeEntry for a Raft entry this node proposed as leader,
	// ProposeForward for a batch it forwarded to the leader; groups is
	// the number of callers (or forwarded batches) in it (metrics). It
	// must not block.
	OnPropose func(kind string, groups, commands int)
	// OnStoreLogs, if set, is called with the number of entries of every
	// write to the Raft log (metrics). It must not block.
	OnStoreLogs func(entries int)
	// OnRedelivery, if set, is called for every redelivery of a durable
	// batch after its handler failed, and OnParked when a durable stream
	// served by this node parks events (metrics). They must not block.
	OnRedelivery func(name string)
	OnParked     func(name string, events int)
	Version      string
	Logger       *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RaftAdvertiseAddr == "" {
		c.RaftAdvertiseAddr = c.RaftAddr
	}
	if c.GossipAdvertise == "" {
		c.GossipAdvertise = c.GossipAddr
	}
	if c.Limits == (contract.Limits{}) {
		c.Limits = contract.DefaultLimits
	}
	if reflect.ValueOf(c.Raft).IsZero() { // not ==: raftlog.Config holds a func
		c.Raft = raftlog.DefaultConfig()
	}
	if c.MaxInflightForwards <= 0 {
		c.MaxInflightForwards = 4
	}
	if c.MaxInflightProposals <= 0 {
		c.MaxInflightProposals = 1
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.IdempotencyRetention <= 0 {
		c.IdempotencyRetention = time.Hour
	}
	if c.PromoteAfter <= 0 {
		c.PromoteAfter = 2 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// bad returns the *configerr.Error for field, wrapping ErrInvalidConfig.
func bad(field, why string) error { return configerr.New(ErrInvalidConfig, field, why) }

// Validate reports the first thing wrong with c, after defaults.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.NodeID == "" {
		return bad("NodeID", "is empty; give every node a stable, unique id (for example the pod name)")
	}
	if c.DataDir == "" {
		return bad("DataDir", "is empty; give the node a directory of its own")
	}
	for _, a := range []struct{ name, v string }{
		{"RaftAddr", c.RaftAddr}, {"GossipAddr", c.GossipAddr}, {"GRPCAddr", c.GRPCAddr},
	} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.name, fmt.Sprintf("%q is not host:port: %v", a.v, err))
		}
	}
	if c.BootstrapExpect < 0 {
		return bad("BootstrapExpect", "is negative")
	}
	if c.BootstrapExpect == 1 && len(c.Join) > 0 {
		return bad("BootstrapExpect", "is 1 with a join list: a node that joins others must not bootstrap a cluster of its own; use 0 to join an existing cluster, or the size of a new cluster")
	}
	if c.BootstrapExpect > 1 && len(c.Join) == 0 {
		return bad("Join", fmt.Sprintf("is empty with BootstrapExpect %d; list the other nodes' gossip addresses", c.BootstrapExpect))
	}
	return c.validateSizes()
}

// MaxAppendEntriesBytes bounds what one Raft AppendEntries may carry:
// Raft.MaxAppendEntries entries of the largest entry a node proposes.
//
// hashicorp/raft bounds an AppendEntries by entry count only, and its
// NetworkTransport decodes msgpack with no message size limit, so the
// count times the largest entry is what a leader builds and encodes and
// what a follower reads into memory for one RPC, within one
// TransportTimeout, for every peer that is catching up. Peers are
// authenticated, so this bounds what honest nodes do to each other, not
// what a hostile peer could send.
const MaxAppendEntriesBytes = 64 << 20

// largestEntry is the most bytes of events one Raft entry carries: one
// append of Limits.MaxBatchBytes is one entry, and the proposer coalesces
// smaller ones up to maxEntryBytes. Each event adds a few bytes of
// encoding, an AppendIf its context.
func largestEntry(l contract.Limits) int { return max(l.MaxBatchBytes, maxEntryBytes) }

// MaxAppendEntriesFor is the most entries per AppendEntries that stays
// within MaxAppendEntriesBytes with limits l (at least 1): what a node
// configured with a larger Limits.MaxBatchBytes should use.
func MaxAppendEntriesFor(l contract.Limits) int {
	return max(1, MaxAppendEntriesBytes/largestEntry(l))
}

// validateSizes checks that the limits bound a Raft AppendEntries and
// that every event a node accepts can be read back with Query.
func (c *Config) validateSizes() error {
	l := c.Limits
	if l.MaxBatchBytes <= 0 {
		return bad("Limits.MaxBatchBytes", fmt.Sprintf("is %d: with no bound on an append's bytes, nothing bounds a Raft entry or an AppendEntries; "+
			"set it (the default is %d)", l.MaxBatchBytes, contract.DefaultLimits.MaxBatchBytes))
	}
	if n, per := c.Raft.MaxAppendEntries, largestEntry(l); n*per > MaxAppendEntriesBytes {
		return bad("Raft.MaxAppendEntries", fmt.Sprintf("is %d with entries of up to %d bytes (Limits.MaxBatchBytes): one AppendEntries could carry %d MiB, "+
			"more than %d MiB; lower MaxAppendEntries to %d or Limits.MaxBatchBytes",
			n, per, n*per>>20, MaxAppendEntriesBytes>>20, MaxAppendEntriesBytes/per))
	}
	if l.MaxQueryBytes < 0 {
		return bad("Limits.MaxQueryBytes", fmt.Sprintf("is %d; use 0 for no bound or a positive size", l.MaxQueryBytes))
	}
	largest := l.MaxTypeBytes + l.MaxPayloadBytes + contract.RecordOverheadBytes // contract.ResultBytes of the largest event
	if l.MaxQueryBytes > 0 && l.MaxPayloadBytes > 0 && l.MaxTypeBytes > 0 && l.MaxQueryBytes < largest {
		return bad("Limits.MaxQueryBytes", fmt.Sprintf("is %d, less than the largest event (%d bytes with Limits.MaxPayloadBytes %d): "+
			"no query could return such an event; raise it", l.MaxQueryBytes, largest, l.MaxPayloadBytes))
	}
	return nil
}
