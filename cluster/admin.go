package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/wire"
)

// MemberStatus is one server of the cluster as the node sees it.
type MemberStatus struct {
	ID, RaftAddr, GRPCAddr string
	Suffrage               string // voter or nonvoter
	State                  string // leader, follower, candidate, unreachable
	GossipState            string
	AppliedIndex           uint64
	CommitIndex            uint64
	Term                   uint64
	Lag                    uint64
	Healthy                bool
}

// Status is the cluster as one node sees it.
type Status struct {
	ClusterID            string
	NodeID, LeaderID     string
	Term                 uint64
	CommitIndex, Applied uint64
	Head                 uint64
	Members              []MemberStatus
	Warnings             []string
}

// Admin is the operator's side of a node: status, membership changes,
// leadership transfer, backups. Each call may be made on any node; what only
// the leader can do is forwarded to it. (In the manner of Consul's
// endpoint structs: a handle on the node with a surface of its own.)
type Admin struct{ n *Node }

// Admin returns the node's operator operations.
func (n *Node) Admin() *Admin { return &Admin{n: n} }

// Status reports the Raft configuration, each member's progress (asked
// over the peer service) and warnings such as an even number of voters.
func (a *Admin) Status(ctx context.Context) (Status, error) {
	st := Status{
		ClusterID: a.n.ident.ClusterID(), NodeID: a.n.cfg.NodeID, LeaderID: a.n.LeaderID(), Term: a.n.raft.CurrentTerm(),
		CommitIndex: a.n.raft.CommitIndex(), Applied: a.n.fsm.AppliedIndex(), Head: a.n.store.Replica().Head(),
	}
	cf := a.n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return st, fmt.Errorf("read raft configuration: %w", err)
	}
	voters := 0
	var leaderApplied uint64
	recorded, _ := a.n.store.Replica().Incarnations()
	for _, s := range cf.Configuration().Servers {
		m := MemberStatus{ID: string(s.ID), RaftAddr: string(s.Address), Suffrage: "nonvoter", State: "unreachable"}
		if s.Suffrage == raft.Voter {
			m.Suffrage = "voter"
			voters++
		}
		if gm, ok := a.n.ml.Lookup(m.ID); ok {
			m.GRPCAddr = gm.Meta.GRPCAddr
			m.GossipState = gm.State.String()
		}
		if m.ID == a.n.cfg.NodeID {
			m.GRPCAddr = a.n.cfg.GRPCAddr
			m.State = stateName(a.n.raft.State())
			m.AppliedIndex, m.CommitIndex, m.Term = a.n.fsm.AppliedIndex(), a.n.raft.CommitIndex(), a.n.raft.CurrentTerm()
			m.Healthy = st.LeaderID != ""
		} else if m.GRPCAddr != "" {
			if ps, err := a.n.peers.nodeStatus(ctx, m.GRPCAddr); err == nil {
				m.State = stateNameOf(ps.GetState())
				m.AppliedIndex, m.CommitIndex, m.Term = ps.GetAppliedIndex(), ps.GetCommitIndex(), ps.GetTerm()
				m.Healthy = ps.GetLeaderId() != ""
				if rec, inc := recorded[m.ID], ps.GetIncarnation(); s.Suffrage == raft.Voter && rec != "" && inc != "" && rec != inc {
					st.Warnings = append(st.Warnings, fmt.Sprintf("%s runs on a data directory the cluster has not recorded (wiped?): it withholds its vote until the leader re-adds it, which needs the leader to see it over gossip (check its --join list)", m.ID))
				}
			}
		}
		if m.State == "leader" {
			leaderApplied = m.AppliedIndex
		}
		st.Members = append(st.Members, m)
	}
	for i := range st.Members {
		if leaderApplied > st.Members[i].AppliedIndex {
			st.Members[i].Lag = leaderApplied - st.Members[i].AppliedIndex
		}
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	if voters%2 == 0 && voters > 0 {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%d voters: an even number of voters tolerates no more failures than %d would (%d); add or remove one", voters, voters-1, (voters-1)/2))
	}
	if st.LeaderID == "" {
		st.Warnings = append(st.Warnings, "no leader known to this node")
	}
	if !a.n.votes.allowed() {
		st.Warnings = append(st.Warnings, "this node withholds its vote: its data directory is new to the cluster and a leader has not recorded it yet (it is added as a non-voter first; check that it reaches a live member over gossip)")
	}
	if a.n.left.Load() {
		st.Warnings = append(st.Warnings, "this node has left the cluster; it can be stopped")
	}
	// The counter only grows (it is also a metric); warn while claims are
	// recent, so a restart on a new address stops being reported once
	// peers have accepted it.
	if c, last := a.n.ml.Conflicts(), a.n.ml.LastConflict(); c > 0 && time.Since(last) < conflictWarnFor {
		st.Warnings = append(st.Warnings, fmt.Sprintf("gossip saw %d claim(s) of a node id already in use by another address, the last %s ago; check for two nodes started with one --node-id", c, time.Since(last).Round(time.Second)))
	}
	return st, nil
}

// conflictWarnFor is how long status keeps warning about a node-id conflict.
const conflictWarnFor = 2 * time.Minute

func stateName(s raft.RaftState) string {
	return stateNameOf(s.String())
}

// stateNameOf lower-cases a raft.RaftState name as a peer reports it.
func stateNameOf(s string) string {
	switch s {
	case "Leader":
		return "leader"
	case "Follower":
		return "follower"
	case "Candidate":
		return "candidate"
	case "Shutdown":
		return "shutdown"
	}
	return s
}

// Join contacts the gossip addresses; the leader then adds this node (or,
// called on a member, the nodes behind the addresses) as non-voters.
func (a *Admin) Join(ctx context.Context, addrs []string) (int, error) {
	return a.n.ml.JoinNow(ctx, addrs)
}

// Remove removes a server from the Raft configuration (on the leader; a
// follower forwards the request). It refuses to remove the last voter.
func (a *Admin) Remove(ctx context.Context, id string) error {
	if a.n.raft.State() != raft.Leader {
		_, cl, err := a.n.leaderClient()
		if err != nil {
			return err
		}
		_, err = cl.RemoveServer(ctx, &peerv1.RemoveServerRequest{NodeId: id})
		return wire.FromPeerStatus(err)
	}
	a.n.records.mu.Lock()
	defer a.n.records.mu.Unlock()
	cf := a.n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	found, voters := false, 0
	var target raft.Server
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			found, target = true, s
		}
	}
	if !found {
		return fmt.Errorf("%w: %q is not in the raft configuration; see 'factstr-node admin members'", ErrUnknownNode, id)
	}
	if target.Suffrage == raft.Voter && voters == 1 {
		return fmt.Errorf("%w: %q is the only voter; removing it would leave no cluster", ErrLastVoter, id)
	}
	if err := a.n.records.recordRemoval(id); err != nil {
		return fmt.Errorf("remove %q: %w", id, err)
	}
	if err := a.n.raft.RemoveServer(raft.ServerID(id), 0, a.n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove %q: %w", id, err)
	}
	a.n.leader.releaseLeasesOf(id)
	return nil
}

// Leave removes this node from the cluster: a leader hands leadership over
// first. The node then leaves gossip before the leader removes it, so the
// leader's reconcile loop cannot see it still alive and add it back.
func (a *Admin) Leave(ctx context.Context) error {
	if a.n.raft.State() == raft.Leader && voterCount(a.n.raft) > 1 {
		if err := a.handOver().Error(); err != nil {
			return fmt.Errorf("hand leadership over before leaving: %w", err)
		}
	}
	if a.n.raft.State() == raft.Leader {
		// The only voter: there is no one to hand over to.
		err := a.Remove(ctx, a.n.cfg.NodeID)
		if err == nil {
			a.n.left.Store(true)
		}
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, a.n.cfg.ApplyTimeout)
	defer cancel()
	var cl peerv1.PeerServiceClient
	for {
		var err error
		if _, cl, err = a.n.leaderClient(); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: %w (%v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := a.n.ml.Leave(5 * time.Second); err != nil {
		a.n.log.Warn("leave gossip", "error", err)
	}
	for {
		_, err := cl.RemoveServer(ctx, &peerv1.RemoveServerRequest{NodeId: a.n.cfg.NodeID})
		if err == nil {
			a.n.left.Store(true)
			return nil
		}
		if err = wire.FromPeerStatus(err); !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("leave: %w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
		// Leadership may have moved while we asked.
		if _, c2, err := a.n.leaderClient(); err == nil {
			cl = c2
		}
	}
}

// TransferLeadership moves leadership to id, or to the most up-to-date
// voter when id is empty. It returns the new leader.
func (a *Admin) TransferLeadership(ctx context.Context, id string) (string, error) {
	if a.n.raft.State() != raft.Leader {
		_, cl, err := a.n.leaderClient()
		if err != nil {
			return "", err
		}
		resp, err := cl.TransferLeadership(ctx, &peerv1.TransferLeadershipRequest{NodeId: id})
		if err != nil {
			return "", wire.FromPeerStatus(err)
		}
		return resp.GetNewLeaderId(), nil
	}
	var f raft.Future
	if id == "" {
		f = a.handOver()
	} else {
		var addr raft.ServerAddress
		cf := a.n.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return "", err
		}
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id {
				addr = s.Address
			}
		}
		if addr == "" {
			return "", fmt.Errorf("%w: %q is not in the raft configuration", ErrUnknownNode, id)
		}
		f = a.n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("transfer leadership: %w", err)
	}
	lid, err := a.n.WaitLeader(ctx)
	return lid, err
}

// handOver transfers leadership to a voter that can win the election it
// is asked to start: one whose data directory the cluster has recorded
// (its vote gate lets it campaign; see voteGate), as gossip shows it now.
// A voter the leader has not recorded yet (a cluster that has just formed,
// a wiped node coming back) would not campaign, and the cluster would wait
// for an election timeout with no leader. With no such voter, hashicorp/
// raft picks the most up-to-date one.
func (a *Admin) handOver() raft.Future {
	cf := a.n.raft.GetConfiguration()
	recs, err := a.n.store.Replica().Incarnations()
	if cf.Error() != nil || err != nil || a.n.ml == nil {
		return a.n.raft.LeadershipTransfer()
	}
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == a.n.cfg.NodeID {
			continue
		}
		m, ok := a.n.ml.Lookup(string(s.ID))
		if ok && m.Meta.Incarnation != "" && recs[string(s.ID)] == m.Meta.Incarnation {
			return a.n.raft.LeadershipTransferToServer(s.ID, s.Address)
		}
	}
	return a.n.raft.LeadershipTransfer()
}

// SnapshotSave writes a consistent copy of this node's state, after a
// linearizable read barrier, to w. It is a backup that can seed a new
// cluster (SnapshotRestore).
func (a *Admin) SnapshotSave(ctx context.Context, w io.Writer) error {
	if err := a.n.ReadBarrier(ctx); err != nil {
		return err
	}
	return fsm.WriteBackup(a.n.store, w)
}

// SnapshotRestore replaces the cluster's whole state with a backup made by
// SnapshotSave. It runs on the leader (a follower refuses) and replicates to
// every node as a Raft snapshot.
func (a *Admin) SnapshotRestore(ctx context.Context, r io.Reader) error {
	if a.n.raft.State() != raft.Leader {
		return fmt.Errorf("%w: restore runs on the leader (%s); send it there", ErrNotLeader, a.n.LeaderID())
	}
	// raft.Restore needs the size up front: spool the backup to a file.
	f, err := os.CreateTemp(a.n.cfg.DataDir, "restore-*.backup")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("receive backup: %w", err)
	}
	head := make([]byte, len(fsm.BackupHeader))
	if _, err := f.ReadAt(head, 0); err != nil || string(head) != fsm.BackupHeader {
		return fmt.Errorf("%w: not a FACTSTR backup (make one with 'factstr-node admin snapshot save')", contract.ErrInvalidQuery)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	if err := a.n.raft.Restore(meta, f, a.n.cfg.ApplyTimeout); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// raft.Restore ends with a no-op entry, which never reaches the FSM; a
	// command moves every node's applied index past the restore point so
	// linearizable reads can be served again.
	if _, _, err := a.n.propose(ctx, []command.Command{command.Noop{}}); err != nil {
		return fmt.Errorf("commit after restore: %w", err)
	}
	return nil
}

func (p *peerServer) RemoveServer(ctx context.Context, req *peerv1.RemoveServerRequest) (*peerv1.RemoveServerResponse, error) {
	if p.n.raft.State() != raft.Leader {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not the leader", p.n.cfg.NodeID)
	}
	if err := p.n.Admin().Remove(ctx, req.GetNodeId()); err != nil {
		return nil, wire.ToStatus(err)
	}
	return &peerv1.RemoveServerResponse{}, nil
}

func (p *peerServer) TransferLeadership(ctx context.Context, req *peerv1.TransferLeadershipRequest) (*peerv1.TransferLeadershipResponse, error) {
	if p.n.raft.State() != raft.Leader {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not the leader", p.n.cfg.NodeID)
	}
	id, err := p.n.Admin().TransferLeadership(ctx, req.GetNodeId())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return &peerv1.TransferLeadershipResponse{NewLeaderId: id}, nil
}
