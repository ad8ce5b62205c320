package raftlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

const (
	raftDirName       = "raft"
	boltFileName      = "raft.db"
	snapshotsRetained = 2

	// defaultLockWait bounds how long Open waits for raft.db's file lock
	// when ctx has no deadline. bbolt's default is to wait forever, which
	// turns "two processes share a DataDir" into a silent hang.
	defaultLockWait = 5 * time.Second
)

// Stores holds the pieces raft.NewRaft needs for one node. Build the node
// with
//
//	raft.NewRaft(s.RaftConfig(), fsm, s.LogStore, s.StableStore, s.SnapshotStore, s.Transport)
//
// and call Close after (*raft.Raft).Shutdown.
type Stores struct {
	// LogStore is the bolt store behind a raft.LogCache.
	LogStore raft.LogStore
	// StableStore is the same bolt store (term and vote).
	StableStore raft.StableStore
	// SnapshotStore is a file snapshot store in DataDir/raft/snapshots.
	SnapshotStore raft.SnapshotStore
	// Transport is a raft.NetworkTransport over Network. It implements
	// raft.WithPreVote, which pre-vote requires.
	Transport *raft.NetworkTransport
	// Network is the transport's stream layer; tests use it to partition
	// the node.
	Network *PartitionableStreamLayer

	cfg    Config
	dir    string
	logger *hclogAdapter
	bolt   *raftboltdb.BoltStore

	closeOnce sync.Once
	closeErr  error
}

// Open validates cfg, creates DataDir/raft, opens the stores and starts the
// transport listening on cfg.BindAddr. Open fails if ctx is already done;
// ctx's deadline bounds the wait for raft.db's file lock, which another
// process using the same DataDir would hold (5s without a deadline).
func Open(ctx context.Context, cfg Config) (*Stores, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("raftlog: open: %w", err)
	}

	dir := filepath.Join(cfg.DataDir, raftDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftlog: create %s: %w", dir, err)
	}
	s := &Stores{cfg: cfg, dir: dir, logger: newHCLogAdapter(cfg.Logger)}
	if err := s.open(ctx); err != nil {
		_ = s.closeAll()
		return nil, err
	}
	return s, nil
}

func (s *Stores) open(ctx context.Context) error {
	lockWait := defaultLockWait
	if deadline, ok := ctx.Deadline(); ok {
		lockWait = max(time.Until(deadline), time.Millisecond)
	}
	path := filepath.Join(s.dir, boltFileName)
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bbolt.Options{
			Timeout:        lockWait,
			NoFreelistSync: s.cfg.NoFreelistSync,
		},
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("raftlog: open %s: file lock not acquired within %v; is another process using DataDir %s? %w", path, lockWait, s.cfg.DataDir, err)
	}
	if err != nil {
		return fmt.Errorf("raftlog: open %s: %w", path, err)
	}
	s.bolt = bolt
	s.StableStore = bolt

	cache, err := raft.NewLogCache(s.cfg.LogCacheSize, bolt)
	if err != nil {
		return fmt.Errorf("raftlog: log cache: %w", err)
	}
	s.LogStore = cache

	// NewFileSnapshotStore creates <dir>/snapshots itself.
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.dir, snapshotsRetained, s.logger.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("raftlog: snapshot store in %s: %w", s.dir, err)
	}
	s.SnapshotStore = snaps

	stream, err := NewPartitionableStreamLayer(ctx, s.cfg.BindAddr, s.cfg.AdvertiseAddr)
	if err != nil {
		return err
	}
	s.Network = stream
	// We build the NetworkTransport ourselves instead of calling
	// raft.NewTCPTransport so the stream layer can be partitioned and the
	// advertised address can be a DNS name (NewTCPTransport needs a
	// resolved *net.TCPAddr).
	s.Transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: s.cfg.TransportMaxPool,
		Timeout: s.cfg.TransportTimeout,
		Logger:  s.logger.Named("raft-net"),
		// MaxRPCsInFlight stays at raft's default of 2: deeper pipelines
		// hurt commit latency together with batching (hashicorp/raft#541).
	})
	return nil
}

// RaftConfig returns a fresh raft.Config built from the validated Config,
// logging through Config.Logger. Callers may adjust it (e.g. set
// ShutdownOnRemove) before raft.NewRaft.
func (s *Stores) RaftConfig() *raft.Config {
	return s.cfg.raftConfig(s.logger)
}

// Dir is the directory that holds Raft state, DataDir/raft.
func (s *Stores) Dir() string { return s.dir }

// HasExistingState reports whether this node has Raft state (a term, log
// entries or a snapshot), i.e. whether it was bootstrapped or joined
// before. A node with existing state must not be bootstrapped again.
func (s *Stores) HasExistingState() (bool, error) {
	ok, err := raft.HasExistingState(s.LogStore, s.StableStore, s.SnapshotStore)
	if err != nil {
		return false, fmt.Errorf("raftlog: read existing state: %w", err)
	}
	return ok, nil
}

// Close stops the transport and closes raft.db. Call it only after
// (*raft.Raft).Shutdown has returned. It is idempotent; later calls return
// the first call's result.
func (s *Stores) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
	return s.closeErr
}

// closeAll closes whatever open managed to create.
func (s *Stores) closeAll() error {
	var errs []error
	// raft.Shutdown already closes the transport (it implements
	// raft.WithClose); NetworkTransport.Close is idempotent. Closing the
	// stream layer also closes pooled and inbound connections, so no
	// connection handler outlives Close.
	if s.Transport != nil {
		if err := s.Transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raftlog: close transport: %w", err))
		}
	}
	if s.Network != nil {
		if err := s.Network.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raftlog: close listener: %w", err))
		}
	}
	if s.bolt != nil {
		if err := s.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raftlog: close %s: %w", boltFileName, err))
		}
	}
	return errors.Join(errs...)
}
