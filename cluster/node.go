package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	bolterrors "go.etcd.io/bbolt/errors"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/nodeerr"
	"github.com/factstr/factstr-go/internal/streams"
	"github.com/factstr/factstr-go/membership"
	"github.com/factstr/factstr-go/raftlog"
)

// Errors callers branch on (defined in internal/nodeerr, where the wire
// mapping can see them).
var (
	// ErrNoLeader: the cluster has no reachable leader right now (an
	// election, a partition). Safe to retry.
	ErrNoLeader = nodeerr.ErrNoLeader
	// ErrOutcomeUnknown: a write may or may not have committed (leadership
	// lost, timeout). Retrying with the same idempotency key is safe.
	ErrOutcomeUnknown = nodeerr.ErrOutcomeUnknown
	// ErrNotLeader is returned by leader-only operations on a follower.
	ErrNotLeader = nodeerr.ErrNotLeader
	// ErrWrongNode: the data directory belongs to another node.
	ErrWrongNode = nodeerr.ErrWrongNode
	// ErrUnknownNode: no server of that id is in the Raft configuration.
	ErrUnknownNode = nodeerr.ErrUnknownNode
	// ErrLastVoter: removing the server would leave no voter.
	ErrLastVoter = nodeerr.ErrLastVoter
	// ErrWrongCluster: the node belongs to another cluster.
	ErrWrongCluster = nodeerr.ErrWrongCluster
	// ErrLeft: this node has left the cluster; use another node.
	ErrLeft = nodeerr.ErrLeft
)

// Node is one member of a FACTSTR cluster. It implements
// contract.EventStore.
type Node struct {
	cfg    Config
	log    *slog.Logger
	bootID string

	stores *raftlog.Stores
	store  *boltstore.Store
	fsm    *fsm.FSM
	raft   *raft.Raft
	ml     *membership.Membership
	// leaderClient dials the current leader's peer service.
	leaderClient func() (string, peerv1.PeerServiceClient, error)
	engine       *streams.Engine
	peers        *peerPool
	disk         *diskguard.Guard // refuses writes before the data disk fills

	proposer *proposer
	autoKeys *autoKeys

	readyTerm *streams.Watermark // highest term in which this node, as leader, committed its own entry
	reads     *readIndex

	ident *identity // node.json, the cluster id, the incarnation
	join  *joiner   // bootstrap, or learning the cluster id after being added

	// stamps tracks the wall-clock stamps used as leader, so that pruning
	// idempotency keys survives clock jumps (stampwindow.go).
	stamps *stampWindow

	votes     *voteGate
	voteGuard *raftlog.VoteGuard
	records   *memberRecords
	leader    *leaderDuties

	// left is set once this node has left the cluster: it then refuses
	// client calls at once, so clients fail over instead of waiting.
	left atomic.Bool

	leasesCleared atomic.Bool
	leaseMu       sync.Mutex

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closed    atomic.Bool
	fresh     *freshness // how far behind the leader this node may be
}

var (
	_ contract.EventStore         = (*Node)(nil)
	_ contract.IdempotentAppender = (*Node)(nil)
)

// Start opens the node's data directory, starts Raft and gossip, and begins
// bootstrapping or joining in the background. It does not wait for a leader.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ident, err := openIdentity(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	incarnation := ident.incarnation
	n := &Node{cfg: cfg, log: log, bootID: randomID(8), fresh: newFreshness(time.Now()), readyTerm: streams.NewWatermark(0), ident: ident, stamps: newStampWindow(cfg.IdempotencyRetention, nil),
		disk: diskguard.New(cfg.DataDir, cfg.MinFreeDisk, log)}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	fsmPath := filepath.Join(cfg.DataDir, "fsm.db")
	store, restore, err := openStateMachine(fsmPath, log)
	if err != nil {
		return nil, err
	}
	n.store = store
	n.fsm = fsm.New(store, log)
	n.fsm.OnApply = cfg.OnApply
	commits := new(commitWatch)
	n.fsm.OnCommitted = commits.committed

	rcfg := cfg.Raft
	rcfg.NodeID, rcfg.DataDir, rcfg.BindAddr, rcfg.AdvertiseAddr = cfg.NodeID, filepath.Join(cfg.DataDir), cfg.RaftAddr, cfg.RaftAdvertiseAddr
	rcfg.Logger = log
	stores, err := raftlog.Open(ctx, rcfg)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	n.stores = stores
	hasState, err := stores.HasExistingState()
	if err != nil {
		closeStorage(n.log, n.voteGuard, n.store, n.stores)
		return nil, err
	}
	if !restore {
		// A file that looks clean may still be behind what the log can
		// replay (emptied, or replaced by an older copy): replaying only the
		// log's tail into it would renumber events.
		if restore, err = stateMachineBehind(stores, store.Replica().AppliedIndex()); err != nil {
			closeStorage(n.log, n.voteGuard, n.store, n.stores)
			return nil, err
		}
		if restore {
			log.Warn("state machine is behind the latest snapshot or the start of the raft log; rebuilding it from the snapshot and the log",
				"file", fsmPath, "applied_index", store.Replica().AppliedIndex())
		}
	}
	rc := stores.RaftConfig()
	rc.NoSnapshotRestoreOnStart = !restore
	// Raft state that survived (term and vote included) makes this node
	// trustworthy at once; a fresh directory must first be recognised.
	n.votes = &voteGate{store: store, nodeID: cfg.NodeID, incarnation: incarnation, log: log}
	n.votes.may.Store(hasState)
	n.voteGuard = raftlog.GuardVotes(stores.Transport, n.votes.guard, n.votes.withheld)
	logs := stores.LogStore
	if cfg.OnStoreLogs != nil {
		logs = countingLogStore{LogStore: logs, observe: cfg.OnStoreLogs}
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stores.StableStore, stores.SnapshotStore, n.voteGuard)
	if err != nil {
		closeStorage(n.log, n.voteGuard, n.store, n.stores)
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.peers = newPeerPool(cfg.PeerDialOptions)
	n.autoKeys = newAutoKeys(cfg.NodeID, time.Now())
	n.leaderClient = func() (string, peerv1.PeerServiceClient, error) {
		return n.peers.leaderClient(r, n.ml, cfg.NodeID)
	}
	n.proposer = newProposer(n.ctx, &n.wg, &n.cfg, r, n.stamps, commits, func() (string, peerv1.PeerServiceClient, error) {
		return n.peers.forwardClient(r, n.ml, cfg.NodeID)
	})
	n.reads = newReadIndex(r, cfg.NodeID, n.readyTerm, n.leaderClient, n.ctx.Done())
	n.engine = streams.New(streams.Config{
		Source:       store,
		Hub:          store.Replica().Hub(),
		Durables:     (*raftDurables)(n),
		HolderPrefix: cfg.NodeID + "/" + n.bootID,
		Logger:       log,

		SubscriberBytes: cfg.StreamSubscriberBytes,
		NodeBytes:       cfg.StreamNodeBytes,
		StallTimeout:    cfg.StreamStallTimeout,
		OnRedelivery:    cfg.OnRedelivery,
		OnParked:        cfg.OnParked,
	})

	var tune func(*memberlist.Config)
	if cfg.FastGossip {
		tune = membership.FastTimings
	}
	// Gossip keeps looking for peers for the node's whole life, not just
	// for the duration of Start's ctx.
	ml, err := membership.Start(n.ctx, membership.Config{
		BindAddr:      cfg.GossipAddr,
		AdvertiseAddr: cfg.GossipAdvertise,
		Join:          cfg.Join,
		Tune:          tune,
		SecretKey:     cfg.GossipKey,
		Logger:        log,
		Meta: membership.Meta{
			NodeID:          cfg.NodeID,
			RaftAddr:        cfg.RaftAdvertiseAddr,
			GRPCAddr:        cfg.GRPCAddr,
			Incarnation:     incarnation,
			Version:         cfg.Version,
			BootstrapExpect: cfg.BootstrapExpect,
			HasRaftState:    hasState,
			ClusterID:       ident.ClusterID(),
		},
	})
	if err != nil {
		_ = r.Shutdown().Error()
		closeStorage(n.log, n.voteGuard, n.store, n.stores)
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	n.ml = ml
	n.records = &memberRecords{store: store, ml: ml, raft: r, nodeID: cfg.NodeID, incarnation: incarnation, log: log, apply: n.proposer.applyLocal}
	n.join = &joiner{cfg: cfg, log: log, raft: r, ml: ml, votes: n.votes, ident: ident, peerStatus: n.peers.nodeStatus}
	n.leader = &leaderDuties{cfg: cfg, log: log, raft: r, ml: ml, store: store, peers: n.peers, stamps: n.stamps,
		readyTerm: n.readyTerm, records: n.records, clusterID: ident.ClusterID, apply: n.proposer.applyLocal}

	n.proposer.start(n.ctx, &n.wg)
	n.wg.Add(5)
	go n.fresh.probe(n.ctx, &n.wg, n.raft, n.reads)
	go n.leader.loop(n.ctx, &n.wg)
	go n.join.bootstrap(n.ctx, &n.wg, hasState)
	go n.join.learnClusterID(n.ctx, &n.wg)
	go (*raftDurables)(n).releaseOwnLeasesAtStart()
	return n, nil
}

// fsmCommitInterval is how long the state machine keeps applied entries in
// one open bbolt transaction before committing them, unless a read commits
// them first (boltstore.WithCommitInterval): one commit for many entries.
// etcd's backend commits every 100 ms. AppendIf load on 1,000 contexts
// dirties a posting page per context, so a longer interval writes each page
// once for more appends: 250 ms took 20% more AppendIfs per second than 50
// ms and a quarter less CPU each (docs/performance.md). A crash replays at
// most that much from the log, and a read commits at once anyway.
const fsmCommitInterval = 250 * time.Millisecond

// openStateMachine opens fsm.db and reports whether it must be rebuilt
// from the latest snapshot and the log. The bbolt state machine is not
// fsynced per apply: the Raft log is the durability. After an unclean stop
// the file may miss applied entries (or, after power loss, be torn), so it
// is rebuilt instead of trusted; a damaged file is moved aside (it is
// derived state, kept only for a post-mortem) and rebuilt the same way.
// A missing file (first start, or removed by 'admin recover') is rebuilt
// too: Raft restores its latest snapshot, if any, and replays the log
// after it.
func openStateMachine(path string, log *slog.Logger) (*boltstore.Store, bool, error) {
	open := func() (*boltstore.Store, error) {
		return boltstore.Open(path, boltstore.WithReplicated(), boltstore.WithNoSync(true),
			boltstore.WithCommitInterval(fsmCommitInterval), boltstore.WithLogger(log))
	}
	_, statErr := os.Stat(path)
	existed := statErr == nil
	store, err := open()
	switch {
	case err == nil && (!existed || store.Replica().WasClean()):
		return store, !existed, nil
	case err == nil:
		_ = store.Close()
		log.Warn("state machine was not closed cleanly; rebuilding it from the latest snapshot and the raft log", "file", path)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, false, fmt.Errorf("remove unclean state machine: %w", err)
		}
	case errors.Is(err, bolterrors.ErrTimeout):
		// Another process has the file open: it is in use, not damaged.
		return nil, false, fmt.Errorf("open state machine: %w; is another process using %s?", err, path)
	case errors.Is(err, boltstore.ErrCorrupt):
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, false, fmt.Errorf("move damaged state machine aside: %w (damage: %w)", rerr, err)
		}
		log.Warn("state machine file is damaged; moved it aside, rebuilding from the latest snapshot and the raft log", "file", path, "moved_to", aside, "error", err)
	case existed:
		// Any other open error of an existing file (an older crash left it
		// unreadable): the file is derived, rebuild it.
		log.Warn("state machine could not be opened; rebuilding it from the latest snapshot and the raft log", "file", path, "error", err)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, false, fmt.Errorf("remove unreadable state machine: %w", err)
		}
	default:
		return nil, false, fmt.Errorf("open state machine: %w", err)
	}
	if store, err = open(); err != nil {
		return nil, false, fmt.Errorf("open state machine: %w", err)
	}
	return store, true, nil
}

// stateMachineBehind reports whether a state machine that applied up to
// applied cannot simply continue with the log: the latest snapshot is
// beyond it, or the log was compacted past it. Raft then restores the
// snapshot and replays the log after it.
func stateMachineBehind(stores *raftlog.Stores, applied uint64) (bool, error) {
	snaps, err := stores.SnapshotStore.List()
	if err != nil {
		return false, fmt.Errorf("list raft snapshots: %w", err)
	}
	if len(snaps) > 0 && snaps[0].Index > applied {
		return true, nil
	}
	first, err := stores.LogStore.FirstIndex()
	if err != nil {
		return false, fmt.Errorf("read the raft log's first index: %w", err)
	}
	if first > applied+1 {
		if len(snaps) == 0 {
			return false, fmt.Errorf("the state machine applied up to %d, the raft log starts at %d and there is no snapshot: it cannot be rebuilt; %s",
				applied, first, "remove the data directory and start the node again to rejoin as a new member")
		}
		return true, nil
	}
	return false, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Raft exposes the Raft instance (status, tests).
func (n *Node) Raft() *raft.Raft { return n.raft }

// Info is a snapshot of a node's local state, read without a round trip
// to any other node: for status, metrics and tests.
type Info struct {
	ID        string
	ClusterID string // "" until the node belongs to a cluster
	LeaderID  string // "" while no leader is known
	Leader    bool   // this node leads
	DataDir   string
	// AppliedIndex is the last Raft index the state machine applied;
	// Head the last sequence number it holds.
	AppliedIndex uint64
	Head         uint64
	// DiskLow: writes are refused, the data disk is below the free-space
	// watermark (Config.MinFreeDisk).
	DiskLow bool
	Streams int // live and durable subscriptions served by this node
	// DurablePositions maps each durable stream this node serves to the
	// sequence number through which it has handled or passed the log.
	DurablePositions map[string]uint64
	// GroupMembers maps each consumer group with members on this node to
	// each member's (holder's) position: the lowest of its partitions'.
	GroupMembers map[string]map[string]uint64
	// ClusterIndex is the highest leader commit index the node has
	// learned; Behind how far its state may be behind the leader's
	// (Freshness).
	ClusterIndex uint64
	Behind       time.Duration
	// LiveLag is the largest head minus delivered position among the live
	// streams this node serves; LiveBehind how many of them are behind.
	LiveLag    uint64
	LiveBehind int
	// FSMCommits counts the state machine's bbolt commits: each carries
	// every entry applied since the one before (boltstore.WithCommitInterval).
	FSMCommits uint64
}

// Info returns a snapshot of n's local state.
func (n *Node) Info() Info {
	applied, clusterIndex, behind := n.Freshness()
	liveLag, liveBehind := n.engine.LiveLag()
	return Info{
		ID: n.cfg.NodeID, ClusterID: n.ident.ClusterID(), LeaderID: n.LeaderID(), Leader: n.raft.State() == raft.Leader,
		DataDir: n.cfg.DataDir, AppliedIndex: applied, Head: n.store.Replica().Head(), DiskLow: n.disk.Low(),
		Streams: n.engine.Count(), DurablePositions: n.engine.DurablePositions(), GroupMembers: n.engine.GroupMemberPositions(),
		ClusterIndex: clusterIndex, Behind: behind, LiveLag: liveLag, LiveBehind: liveBehind,
		FSMCommits: n.store.Replica().Commits(),
	}
}

// ID returns the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// LeaderID returns the current leader's id, or "".
func (n *Node) LeaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// WaitLeader blocks until the cluster has a leader this node knows of.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if id := n.LeaderID(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Close shuts the node down: a leader hands leadership over first. Gossip
// is shut down without a leave, so a restart never changes the voter set.
// A Close after Close or Kill returns contract.ErrClosed (once the first
// has finished), as every call after Close does.
func (n *Node) Close() error {
	err := contract.ErrClosed
	n.closeOnce.Do(func() {
		err = nil
		// The streams end first, while the node still proposes: their
		// final coalesced cursor writes and name releases go through
		// Raft. Marking the node closed first refused them, and the next
		// subscriber got again what had been handled.
		sctx, scancel := context.WithTimeout(context.Background(), closeStreamsTimeout)
		if !n.engine.Shutdown(sctx) {
			n.log.Warn("streams did not finish within the close timeout; their last batches may be delivered again", "timeout", closeStreamsTimeout)
		}
		scancel()
		n.closed.Store(true)
		n.engine.Close()
		if n.raft.State() == raft.Leader && voterCount(n.raft) > 1 {
			if terr := n.raft.LeadershipTransfer().Error(); terr != nil {
				n.log.Warn("leadership transfer on shutdown failed", "error", terr)
			}
		}
		n.cancel()
		_ = n.ml.Shutdown()
		if serr := n.raft.Shutdown().Error(); serr != nil {
			err = serr
		}
		waitBounded(n.log, &n.wg, closeGoroutinesTimeout)
		n.peers.close()
		n.fsm.Close()
		n.readyTerm.Close()
		closeStorage(n.log, n.voteGuard, n.store, n.stores)
	})
	return err
}

// waitBounded waits for the node's goroutines (wg), up to timeout. A proposal whose entry had committed and was
// queued for the state machine when Raft shut down never gets an answer
// (hashicorp/raft's FSM loop returns without draining its queue), so the
// proposer goroutine waiting for it would hold Close forever (seen once in
// TestConformanceOnFollower's cleanup). That goroutine touches nothing
// after the answer that never comes, so Close can go on without it.
func waitBounded(log *slog.Logger, wg *sync.WaitGroup, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		log.Warn("close: node goroutines still running after raft shut down; going on without them", "waited", timeout)
	}
}

const closeGoroutinesTimeout = 10 * time.Second

// closeStreamsTimeout bounds how long Close waits for the streams to store
// their final cursors and release their names (a handler that does not
// return is not waited for past it).
const closeStreamsTimeout = 10 * time.Second

// Kill stops the node the way a crash would, for tests: no leadership
// transfer, no clean marker on the state machine.
func (n *Node) kill() {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		_ = n.ml.Shutdown()
		_ = n.raft.Shutdown().Error()
		n.engine.Close()
		waitBounded(n.log, &n.wg, closeGoroutinesTimeout)
		n.peers.close()
		n.fsm.Close()
		n.readyTerm.Close()
		_ = n.store.Abandon()
		_ = n.voteGuard.Close()
		if n.stores != nil {
			_ = n.stores.Close()
		}
	})
}

// closeStorage closes what Start opened, in reverse order; any may be nil
// when Start failed half-way.
func closeStorage(log *slog.Logger, guard *raftlog.VoteGuard, store *boltstore.Store, stores *raftlog.Stores) {
	if guard != nil {
		_ = guard.Close()
	}
	if store != nil {
		if err := store.Close(); err != nil {
			log.Warn("close state machine", "error", err)
		}
	}
	if stores != nil {
		if err := stores.Close(); err != nil {
			log.Warn("close raft storage", "error", err)
		}
	}
}

// Ready reports whether the node knows a leader and its state machine has
// caught up with the commit index it knows of (readiness).
func (n *Node) Ready() bool {
	if n.closed.Load() || n.LeaderID() == "" {
		return false
	}
	const slack = 256
	return n.fsm.AppliedIndex()+slack >= n.raft.CommitIndex()
}

// countingLogStore reports the size of every write to the Raft log: how
// many entries share one fsync.
type countingLogStore struct {
	raft.LogStore
	observe func(entries int)
}

func (s countingLogStore) StoreLog(l *raft.Log) error {
	s.observe(1)
	return s.LogStore.StoreLog(l)
}

func (s countingLogStore) StoreLogs(logs []*raft.Log) error {
	s.observe(len(logs))
	return s.LogStore.StoreLogs(logs)
}
