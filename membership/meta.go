package membership

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// Meta is what every node gossips about itself. It travels in memberlist's
// node meta, which is limited to memberlist.MetaMaxSize (512) bytes;
// Validate and UpdateMeta refuse a Meta that does not fit.
type Meta struct {
	NodeID          string // also the memberlist node name; stable per data directory (the pod name)
	RaftAddr        string // host:port peers dial for Raft
	GRPCAddr        string // host:port for the API and peer forwarding
	Incarnation     string // random id of this node's data directory; a wiped directory gets a new one (IncarnationFile)
	Version         string // software version
	ClusterID       string // "" until the node belongs to a cluster
	BootstrapExpect int    // 0: this node never bootstraps
	HasRaftState    bool   // the node has existing Raft state and must never bootstrap
}

// wireMeta is Meta as gossiped: JSON with short keys and empty fields left
// out, to stay below the 512-byte limit. Kubernetes DNS names are long
// (pod.service.namespace.svc.cluster.local can pass 100 bytes), so a GRPCAddr
// on the same host as RaftAddr is sent as ":port" alone. Unknown keys are
// ignored when decoding, so a newer node may add fields without breaking
// older ones.
//
// Leaving is not part of Meta: it is set only by Leave, just before the
// memberlist leave, so that peers can tell a node that left (Left) from one
// that failed (Dead). memberlist itself reports both through NotifyLeave and
// does not say which (Node.State is never filled in, v0.7.0).
type wireMeta struct {
	NodeID          string `json:"id"`
	RaftAddr        string `json:"raft,omitempty"`
	GRPCAddr        string `json:"grpc,omitempty"`
	Incarnation     string `json:"inc,omitempty"`
	Version         string `json:"ver,omitempty"`
	ClusterID       string `json:"cluster,omitempty"`
	BootstrapExpect int    `json:"expect,omitempty"`
	HasRaftState    bool   `json:"raftstate,omitempty"`
	Leaving         bool   `json:"leaving,omitempty"`
}

func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	grpc := m.GRPCAddr
	rh, _, rerr := net.SplitHostPort(m.RaftAddr)
	gh, gp, gerr := net.SplitHostPort(m.GRPCAddr)
	if rerr == nil && gerr == nil && rh != "" && rh == gh {
		grpc = ":" + gp
	}
	return json.Marshal(wireMeta{
		NodeID:          m.NodeID,
		RaftAddr:        m.RaftAddr,
		GRPCAddr:        grpc,
		Incarnation:     m.Incarnation,
		Version:         m.Version,
		ClusterID:       m.ClusterID,
		BootstrapExpect: m.BootstrapExpect,
		HasRaftState:    m.HasRaftState,
		Leaving:         leaving,
	})
}

func decodeMeta(buf []byte) (Meta, bool, error) {
	var w wireMeta
	if err := json.Unmarshal(buf, &w); err != nil {
		return Meta{}, false, fmt.Errorf("membership: decode node meta: %w", err)
	}
	grpc := w.GRPCAddr
	if strings.HasPrefix(grpc, ":") {
		if rh, _, err := net.SplitHostPort(w.RaftAddr); err == nil {
			grpc = net.JoinHostPort(rh, grpc[1:])
		}
	}
	return Meta{
		NodeID:          w.NodeID,
		RaftAddr:        w.RaftAddr,
		GRPCAddr:        grpc,
		Incarnation:     w.Incarnation,
		Version:         w.Version,
		ClusterID:       w.ClusterID,
		BootstrapExpect: w.BootstrapExpect,
		HasRaftState:    w.HasRaftState,
	}, w.Leaving, nil
}

// State is a member's state as this node sees it.
type State int

const (
	// StateAlive: the member answers probes.
	StateAlive State = iota
	// StateSuspect is reserved. memberlist v0.7.0 does not tell delegates
	// when it suspects a node (and never fills in Node.State), so a member
	// under suspicion is reported Alive until it is declared Dead or
	// refutes.
	StateSuspect
	// StateDead: the member stopped answering and was declared failed. It
	// may come back (same address, or another one after the reclaim time).
	StateDead
	// StateLeft: the member announced it was leaving, then left.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Member is one node as this node sees it.
type Member struct {
	Meta  Meta
	Addr  string    // gossip host:port
	State State     // Alive, Dead or Left (see StateSuspect)
	Since time.Time // when this node last saw State change
}
