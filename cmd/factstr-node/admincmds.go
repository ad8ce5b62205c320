package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/factstr/factstr-go/cluster"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

type memberJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	GRPCAddr     string `json:"grpc_addr"`
	Suffrage     string `json:"suffrage"`
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	Term         uint64 `json:"term"`
	Lag          uint64 `json:"lag"`
	Healthy      bool   `json:"healthy"`
	GossipState  string `json:"gossip_state,omitempty"`
}

func membersJSON(ms []*factstrv1.Member) []memberJSON {
	out := make([]memberJSON, len(ms))
	for i, m := range ms {
		out[i] = memberJSON{ID: m.GetId(), RaftAddr: m.GetRaftAddr(), GRPCAddr: m.GetGrpcAddr(), Suffrage: m.GetSuffrage(),
			State: m.GetState(), AppliedIndex: m.GetAppliedIndex(), CommitIndex: m.GetCommitIndex(), Term: m.GetTerm(),
			Lag: m.GetLag(), Healthy: m.GetHealthy(), GossipState: m.GetGossipState()}
	}
	return out
}

func printMembers(w io.Writer, ms []*factstrv1.Member) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSUFFRAGE\tRAFT\tGRPC\tAPPLIED\tLAG\tHEALTHY")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%v\n", m.GetId(), m.GetState(), m.GetSuffrage(), m.GetRaftAddr(), m.GetGrpcAddr(), m.GetAppliedIndex(), m.GetLag(), m.GetHealthy())
	}
	tw.Flush()
}

func cmdStatus(ctx context.Context, args []string) error {
	return adminStatus(ctx, "status", args)
}

func adminStatus(ctx context.Context, name string, args []string) error {
	var cf clientFlags
	fs := newFlagSet(name, name+" [--addr host:port] [--json]")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.AdminAt(0).Status(ctx, &factstrv1.StatusRequest{})
	if err != nil {
		return err
	}
	if cf.json {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"cluster_id": st.GetClusterId(), "node_id": st.GetNodeId(), "leader_id": st.GetLeaderId(), "term": st.GetTerm(),
			"commit_index": st.GetCommitIndex(), "applied_index": st.GetAppliedIndex(),
			"head_sequence_number": st.GetHeadSequenceNumber(), "members": membersJSON(st.GetMembers()), "warnings": append([]string{}, st.GetWarnings()...),
		})
	}
	fmt.Printf("node %s  leader %s  term %d  commit %d  applied %d  head sequence %d\n",
		st.GetNodeId(), orNone(st.GetLeaderId()), st.GetTerm(), st.GetCommitIndex(), st.GetAppliedIndex(), st.GetHeadSequenceNumber())
	printMembers(os.Stdout, st.GetMembers())
	for _, w := range st.GetWarnings() {
		fmt.Printf("warning: %s\n", w)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

const adminUsage = `Usage: factstr-node admin <command> [flags]

  status                        leader, term, commit and applied index per node, lag, health
  members                       the Raft configuration with each member's state
  join <gossip-addr>            have this node gossip with another (it is then added by the leader)
  leave                         remove the node at --addr from the cluster (hands leadership over first)
  remove <node-id>              remove a (dead) node from the Raft configuration
  transfer-leadership [node-id] move leadership (to node-id, or the most up-to-date voter)
  snapshot save <file>          write a consistent backup of the store
  snapshot restore <file>       replace the cluster's state with a backup (run against the leader)
  recover --data-dir D --node-id ID --peers id=raft-addr,...   offline: rewrite the peer set after quorum loss

Every command takes --addr (default 127.0.0.1:7400) and --json.
`

func cmdAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, adminUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "status":
		return adminStatus(ctx, "admin status", args)
	case "recover":
		return adminRecover(args)
	case "snapshot":
		if len(args) == 0 || (args[0] != "save" && args[0] != "restore") {
			return errors.New("snapshot takes save <file> or restore <file>")
		}
		return adminSnapshot(ctx, args[0], args[1:])
	case "members", "join", "leave", "remove", "transfer-leadership":
	default:
		fmt.Fprintf(os.Stderr, "unknown admin command %q\n\n%s", sub, adminUsage)
		return errUsage
	}
	var cf clientFlags
	fs := newFlagSet("admin "+sub, "admin "+sub+" [args] [--addr host:port] [--json]")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	adm := c.AdminAt(0)
	out := map[string]any{}
	switch sub {
	case "members":
		r, err := adm.Members(ctx, &factstrv1.MembersRequest{})
		if err != nil {
			return err
		}
		if !cf.json {
			printMembers(os.Stdout, r.GetMembers())
			return nil
		}
		out["members"] = membersJSON(r.GetMembers())
	case "join":
		if len(pos) != 1 {
			return errors.New("join takes one gossip address host:port")
		}
		r, err := adm.Join(ctx, &factstrv1.JoinRequest{Addr: pos[0]})
		if err != nil {
			return err
		}
		out["contacted"] = r.GetContacted()
		if !cf.json {
			fmt.Printf("contacted %d node(s); the leader adds new nodes as non-voters and promotes them once caught up\n", r.GetContacted())
			return nil
		}
	case "leave":
		if _, err := adm.Leave(ctx, &factstrv1.LeaveRequest{}); err != nil {
			return err
		}
		out["left"] = true
		if !cf.json {
			fmt.Println("the node left the cluster; it can be stopped")
			return nil
		}
	case "remove":
		if len(pos) != 1 {
			return errors.New("remove takes one node id")
		}
		if _, err := adm.Remove(ctx, &factstrv1.RemoveRequest{NodeId: pos[0]}); err != nil {
			return err
		}
		out["removed"] = pos[0]
		if !cf.json {
			fmt.Printf("removed %s from the cluster\n", pos[0])
			return nil
		}
	case "transfer-leadership":
		req := &factstrv1.TransferLeadershipRequest{}
		if len(pos) > 0 {
			req.NodeId = pos[0]
		}
		r, err := adm.TransferLeadership(ctx, req)
		if err != nil {
			return err
		}
		out["leader_id"] = r.GetNewLeaderId()
		if !cf.json {
			fmt.Printf("leader is now %s\n", r.GetNewLeaderId())
			return nil
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func adminSnapshot(ctx context.Context, op string, args []string) error {
	var cf clientFlags
	fs := newFlagSet("admin snapshot "+op, "admin snapshot "+op+" <file> [--addr host:port]")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("snapshot %s takes one file", op)
	}
	file := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if op == "save" {
		st, err := c.AdminAt(0).SnapshotSave(ctx, &factstrv1.SnapshotSaveRequest{})
		if err != nil {
			return err
		}
		tmp := file + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		var n int64
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
			w, err := f.Write(m.GetChunk())
			n += int64(w)
			if err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, file); err != nil {
			return err
		}
		if cf.json {
			return json.NewEncoder(os.Stdout).Encode(map[string]any{"file": file, "bytes": n})
		}
		fmt.Printf("saved a %d-byte backup to %s\n", n, file)
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := c.AdminAt(0).SnapshotRestore(ctx)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := st.Send(&factstrv1.SnapshotRestoreRequest{Chunk: append([]byte(nil), buf[:n]...)}); err != nil {
				if err == io.EOF {
					// The server ended the call early; its status says why.
					_, err = st.CloseAndRecv()
				}
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	r, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if cf.json {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"applied_index": r.GetAppliedIndex(), "head_sequence_number": r.GetHeadSequenceNumber()})
	}
	fmt.Printf("restored; the store now ends at sequence %d\n", r.GetHeadSequenceNumber())
	return nil
}

func adminRecover(args []string) error {
	var dataDir, nodeID string
	var peers listFlag
	fs := newFlagSet("admin recover", "admin recover --data-dir D --node-id ID --peers id=raft-addr,id=raft-addr,...")
	fs.StringVar(&dataDir, "data-dir", "./factstr-data", "data directory of the STOPPED node to recover")
	fs.StringVar(&nodeID, "node-id", "node1", "id of that node")
	fs.Var(&peers, "peers", "the surviving voters as id=raft-addr (this node included), comma-separated")
	if err := parse(fs, args); err != nil {
		return err
	}
	var ps []cluster.Peer
	for _, p := range peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--peers entry %q is not id=raft-addr", p)
		}
		ps = append(ps, cluster.Peer{ID: id, RaftAddr: addr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.Recover(ctx, dataDir, nodeID, ps, slog.Default()); err != nil {
		return err
	}
	fmt.Printf("recovered %s: its raft configuration is now %d voter(s); start the node\n", dataDir, len(ps))
	return nil
}
