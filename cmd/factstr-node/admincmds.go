package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/factstr/factstr-go/cluster"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/fsutil"
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

func statusFlagSet(cf *clientFlags, name string) *flag.FlagSet {
	fs := newFlagSet(name, name+" [--addr host:port,...] [--json]",
		"Leader, term, commit and applied index, each member's state, lag and health, and warnings, as the\n"+
			"first node of --addr that answers sees the cluster.")
	cf.register(fs)
	return fs
}

func cmdStatus(ctx context.Context, args []string) error {
	return adminStatus(ctx, "status", args)
}

func adminStatus(ctx context.Context, name string, args []string) error {
	var cf clientFlags
	fs := statusFlagSet(&cf, name)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Admin().Status(ctx, &factstrv1.StatusRequest{})
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

const adminUsage = `Usage: factstr-node admin <command> [args] [flags]

  status                        leader, term, commit and applied index per node, lag, health
  members                       the Raft configuration with each member's state
  join <gossip-addr>            have a node gossip with another (it is then added by the leader)
  leave                         remove the FIRST node of --addr from the cluster (hands leadership over first)
  remove <node-id>              remove a (dead) node from the Raft configuration
  transfer-leadership [node-id] move leadership (to node-id, or the most up-to-date voter)
  snapshot save <file>          write a consistent backup of the store
  snapshot restore <file>       replace the cluster's state with a backup (run against the leader)
  streams list|show|reset|delete  durable stream names: cursors, lag, holders; reset or delete one
  recover --data-dir D --node-id ID --peers id=raft-addr,...   offline: rewrite the peer set after quorum loss

Every command but recover takes --addr (default 127.0.0.1:7400; fails over
among several, except leave) and --json. 'factstr-node admin <command> --help'
lists a command's flags.
`

const snapshotUsage = `Usage: factstr-node admin snapshot save|restore <file> [flags]

  save <file>     write a consistent backup of the store to file (atomically: file.tmp, then renamed)
  restore <file>  replace the cluster's state with the backup in file (run against the leader)

'factstr-node admin snapshot save --help' lists the flags.
`

// adminCommands are the admin subcommands, with their positional
// arguments and what they do, for help and completion.
var adminCommands = []struct{ name, args, about string }{
	{"status", "", ""},
	{"members", "", "The Raft configuration with each member's state, as the first node of --addr that answers sees it."},
	{"join", "<gossip-addr>", "Have the node that answers gossip with the node at gossip-addr (host:port of its --gossip-addr);\nthe leader then adds it as a non-voter and promotes it once caught up."},
	{"leave", "", "Remove the FIRST node of --addr from the cluster; it hands leadership over first. No fail-over:\nthe node that leaves is the one you name."},
	{"remove", "<node-id>", "Remove a (dead) node from the Raft configuration."},
	{"transfer-leadership", "[node-id]", "Move leadership to node-id, or to the most up-to-date voter."},
	{"snapshot", "save|restore <file>", ""},
	{"streams", "list|show|reset|delete", ""},
	{"recover", "", ""},
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func adminFlagSet(cf *clientFlags, sub string) *flag.FlagSet {
	for _, c := range adminCommands {
		if c.name == sub {
			fs := newFlagSet("admin "+sub, strings.TrimSpace("admin "+sub+" "+c.args)+" [--addr host:port,...] [--json]", c.about)
			cf.register(fs)
			return fs
		}
	}
	return nil
}

func cmdAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, adminUsage)
		return usagef("admin needs a command")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "--help", "-help", "help":
		fmt.Print(adminUsage)
		return errHelp
	case "status":
		return adminStatus(ctx, "admin status", args)
	case "recover":
		return adminRecover(args)
	case "streams":
		return adminStreams(ctx, args)
	case "snapshot":
		if len(args) == 0 {
			return usagef("snapshot takes save <file> or restore <file> ('factstr-node admin snapshot --help')")
		}
		if isHelp(args[0]) {
			fmt.Print(snapshotUsage)
			return errHelp
		}
		if args[0] != "save" && args[0] != "restore" {
			return usagef("snapshot takes save <file> or restore <file>, not %q", args[0])
		}
		return adminSnapshot(ctx, args[0], args[1:])
	case "members", "join", "leave", "remove", "transfer-leadership":
	default:
		var names []string
		for _, c := range adminCommands {
			names = append(names, c.name)
		}
		msg := fmt.Sprintf("unknown admin command %q", sub)
		if s := closest(sub, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		return usagef("%s ('factstr-node admin --help' lists them)", msg)
	}
	var cf clientFlags
	fs := adminFlagSet(&cf, sub)
	if err := parse(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	switch {
	case sub == "join" && len(pos) != 1:
		return usagef("join takes one gossip address host:port")
	case sub == "remove" && len(pos) != 1:
		return usagef("remove takes one node id")
	case sub == "transfer-leadership" && len(pos) > 1:
		return usagef("transfer-leadership takes at most one node id")
	case (sub == "members" || sub == "leave") && len(pos) > 0:
		return usagef("%s takes no arguments (got %q)", sub, pos[0])
	}
	if sub == "join" {
		if _, port, err := net.SplitHostPort(pos[0]); err != nil || port == "" {
			return usagef("join: %q is not host:port (the --gossip-addr of the node to join, 7402 by default)", pos[0])
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	adm := c.Admin()
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
			fmt.Printf("the node at %s left the cluster; it can be stopped\n", c.Targets()[0])
			return nil
		}
	case "remove":
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

func snapshotFlagSet(cf *clientFlags, op string) *flag.FlagSet {
	about := "Write a consistent backup of the store to file (file.tmp, synced, then renamed)."
	if op == "restore" {
		about = "Replace the cluster's state with the backup in file. Run it against the leader: a follower refuses."
	}
	fs := newFlagSet("admin snapshot "+op, "admin snapshot "+op+" <file> [--addr host:port,...]", about)
	cf.register(fs)
	return fs
}

func adminSnapshot(ctx context.Context, op string, args []string) error {
	var cf clientFlags
	fs := snapshotFlagSet(&cf, op)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("snapshot %s takes one file", op)
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
		st, err := c.Admin().SnapshotSave(ctx, &factstrv1.SnapshotSaveRequest{})
		if err != nil {
			return err
		}
		var n int64
		err = fsutil.WriteFileFunc(file, 0o600, func(w io.Writer) error {
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				k, err := w.Write(m.GetChunk())
				n += int64(k)
				if err != nil {
					return err
				}
			}
		})
		if err != nil {
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
	st, err := c.Admin().SnapshotRestore(ctx)
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

type recoverFlags struct {
	dataDir, nodeID string
	peers           listFlag
}

func recoverFlagSet(r *recoverFlags) *flag.FlagSet {
	fs := newFlagSet("admin recover", "admin recover --data-dir D --node-id ID --peers id=raft-addr,id=raft-addr,...",
		"Offline, on a STOPPED node: rewrite its Raft peer set to the surviving voters after a quorum loss.\n"+
			"Run it on every survivor with the same --peers, then start them.")
	fs.StringVar(&r.dataDir, "data-dir", "./factstr-data", "data directory of the STOPPED node to recover")
	fs.StringVar(&r.nodeID, "node-id", "node1", "id of that node")
	fs.Var(&r.peers, "peers", "the surviving voters as id=raft-addr (this node included), comma-separated")
	return fs
}

func adminRecover(args []string) error {
	var r recoverFlags
	fs := recoverFlagSet(&r)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	dataDir, nodeID, peers := r.dataDir, r.nodeID, r.peers
	var ps []cluster.Peer
	for _, p := range peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			return usagef("--peers entry %q is not id=raft-addr", p)
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
