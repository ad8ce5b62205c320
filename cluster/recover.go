package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/raftlog"
)

// Peer is one server of a recovered configuration.
type Peer struct {
	ID, RaftAddr string
}

// Recover rewrites the Raft configuration of a stopped node's data
// directory after quorum loss (raft.RecoverCluster). Run it, with the same
// peers, on every surviving node while all of them are stopped, then start
// them again. It commits every entry in the node's log, including ones that
// were never acknowledged: pick the survivors with the longest logs.
func Recover(ctx context.Context, dataDir, nodeID string, peers []Peer, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	if len(peers) == 0 {
		return errors.New("recover: give the surviving servers as --peers id=raft-addr,...")
	}
	if _, err := claimDataDir(dataDir, nodeID); err != nil {
		return err
	}
	var conf raft.Configuration
	self := false
	for _, p := range peers {
		if p.ID == "" || p.RaftAddr == "" {
			return fmt.Errorf("recover: peer %+v needs an id and a raft address", p)
		}
		self = self || p.ID == nodeID
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	if !self {
		return fmt.Errorf("recover: the peers must include this node (%s)", nodeID)
	}
	// RecoverCluster leaves the FSM it is given unusable, so it gets a
	// scratch store; the real one is rebuilt from the new snapshot at the
	// next start.
	scratch := filepath.Join(dataDir, "recover-fsm.db")
	_ = os.Remove(scratch)
	defer os.Remove(scratch)
	store, err := boltstore.Open(scratch, boltstore.WithReplicated(), boltstore.WithNoSync(true), boltstore.WithLogger(logger))
	if err != nil {
		return err
	}
	defer store.Close()
	rc := raftlog.DefaultConfig()
	rc.NodeID, rc.DataDir, rc.BindAddr, rc.Logger = nodeID, dataDir, "127.0.0.1:0", logger
	stores, err := raftlog.Open(ctx, rc)
	if err != nil {
		return fmt.Errorf("recover: open raft state (is the node still running?): %w", err)
	}
	defer stores.Close()
	if ok, err := stores.HasExistingState(); err != nil || !ok {
		return fmt.Errorf("recover: %s has no raft state to recover (%v)", dataDir, err)
	}
	f := fsm.New(store, logger)
	if err := raft.RecoverCluster(stores.RaftConfig(), f, stores.LogStore, stores.StableStore, stores.SnapshotStore, stores.Transport, conf); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := os.Remove(filepath.Join(dataDir, "fsm.db")); err != nil && !os.IsNotExist(err) {
		return err
	}
	logger.Info("recovered raft configuration; start the node again", "servers", len(conf.Servers))
	return nil
}
