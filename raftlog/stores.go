package raftlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/factstr/factstr-go/internal/boltcheck"
)

// ErrCorruptLog is returned by Open for a damaged raft.db. Unlike the state
// machine, the Raft log cannot be rebuilt from other files on the node.
var ErrCorruptLog = errors.New("the raft log is damaged")

// corruptLogRecovery is what an operator does about ErrCorruptLog.
const corruptLogRecovery = "it cannot be rebuilt on this node: remove the data directory and start the node again to rejoin as a new member, " +
	"or restore a backup (docs/operations.md, \"Damaged files and a full disk\")"

const (
	raftDirName       = "raft"
	boltFileName      = "raft.db"
	walDirName        = "wal"
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
	// LogStore is the log store (raft-boltdb or raft-wal, per
	// Config.LogStore and what the directory already holds) behind a
	// raft.LogCache.
	LogStore raft.LogStore
	// StableStore is the same store, uncached (term and vote).
	StableStore raft.StableStore
	// SnapshotStore is a file snapshot store in DataDir/raft/snapshots.
	SnapshotStore raft.SnapshotStore
	// Transport is a raft.NetworkTransport over Network. It implements
	// raft.WithPreVote, which pre-vote requires; so must anything that
	// wraps it (GuardVotes does).
	Transport *raft.NetworkTransport
	// Network is the transport's stream layer; tests use it to partition
	// the node.
	Network *PartitionableStreamLayer

	cfg    Config
	dir    string
	logger *hclogAdapter
	bolt   *raftboltdb.BoltStore
	wal    *raftwal.WAL
	walDB  *metadb.BoltMetaDB // raft-wal's Close leaves it open
	lock   *os.File           // flock on the wal directory
	kind   string             // LogStoreBolt or LogStoreWAL

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

// logStoreKind decides which log store dir uses: the kind it already holds,
// else the configured one.
func (s *Stores) logStoreKind() string {
	if _, err := os.Stat(filepath.Join(s.dir, boltFileName)); err == nil {
		return LogStoreBolt
	}
	if _, err := os.Stat(filepath.Join(s.dir, walDirName)); err == nil {
		return LogStoreWAL
	}
	if s.cfg.LogStore == LogStoreWAL {
		return LogStoreWAL
	}
	return LogStoreBolt
}

// openWAL opens the raft-wal log and stable store in dir/wal. Every
// StoreLogs is one write and one fsync of the tail segment.
func (s *Stores) openWAL(ctx context.Context) error {
	dir := filepath.Join(s.dir, walDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("raftlog: create %s: %w", dir, err)
	}
	// raft-wal's meta database waits forever for its file lock; take our
	// own first, bounded like the bolt store's.
	lockWait := defaultLockWait
	if deadline, ok := ctx.Deadline(); ok {
		lockWait = max(time.Until(deadline), time.Millisecond)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	s.lock = lf
	for end := time.Now().Add(lockWait); ; {
		err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(end) {
			return fmt.Errorf("raftlog: open %s: lock not acquired within %v; is another process using DataDir %s? %w", dir, lockWait, s.cfg.DataDir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.walDB = &metadb.BoltMetaDB{}
	w, err := raftwal.Open(dir, raftwal.WithLogger(s.logger.Named("wal")), raftwal.WithMetaStore(s.walDB))
	if err != nil {
		return fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	s.wal = w
	s.StableStore = w
	cache, err := raft.NewLogCache(s.cfg.LogCacheSize, w)
	if err != nil {
		return fmt.Errorf("raftlog: log cache: %w", err)
	}
	s.LogStore = cache
	return nil
}

// LogStoreKind is the log store this node uses (LogStoreBolt or
// LogStoreWAL).
func (s *Stores) LogStoreKind() string { return s.kind }

func (s *Stores) open(ctx context.Context) error {
	s.kind = s.logStoreKind()
	if s.kind == LogStoreWAL {
		if err := s.openWAL(ctx); err != nil {
			return err
		}
		return s.openRest(ctx)
	}
	lockWait := defaultLockWait
	if deadline, ok := ctx.Deadline(); ok {
		lockWait = max(time.Until(deadline), time.Millisecond)
	}
	path := filepath.Join(s.dir, boltFileName)
	if err := s.checkLog(path); err != nil {
		return err
	}
	bolt, err := openBolt(path, lockWait, s.cfg.NoFreelistSync)
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
	return s.openRest(ctx)
}

// checkLog refuses a damaged raft.db before bbolt maps it: bbolt would
// fault or panic on it. An empty raft.db next to a snapshot is damage too
// (bbolt would silently start a new, empty log there).
func (s *Stores) checkLog(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // a new log
	}
	if fi.Size() == 0 {
		if snaps, err := s.listSnapshots(); err == nil && len(snaps) > 0 {
			return fmt.Errorf("raftlog: %s: %w: the file is empty but a snapshot exists; %s", path, ErrCorruptLog, corruptLogRecovery)
		}
		return nil
	}
	if err := boltcheck.Check(path); err != nil {
		return fmt.Errorf("raftlog: %w: %w; %s", ErrCorruptLog, err, corruptLogRecovery)
	}
	return nil
}

func (s *Stores) listSnapshots() ([]os.DirEntry, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	var snaps []os.DirEntry
	for _, e := range entries {
		if e.IsDir() && filepath.Ext(e.Name()) != ".tmp" {
			snaps = append(snaps, e)
		}
	}
	return snaps, err
}

// openBolt opens raft.db; a fault in the mapped file that the check did not
// foresee becomes an error rather than a crash.
func openBolt(path string, lockWait time.Duration, noFreelistSync bool) (bolt *raftboltdb.BoltStore, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			bolt, err = nil, fmt.Errorf("%w: %v; %s", ErrCorruptLog, r, corruptLogRecovery)
		}
	}()
	return raftboltdb.New(raftboltdb.Options{
		Path: path,
		BoltOptions: &bbolt.Options{
			Timeout:        lockWait,
			NoFreelistSync: noFreelistSync,
		},
	})
}

// openRest opens the snapshot store and the transport.
func (s *Stores) openRest(ctx context.Context) error {
	// NewFileSnapshotStore creates <dir>/snapshots itself.
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.dir, snapshotsRetained, s.logger.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("raftlog: snapshot store in %s: %w", s.dir, err)
	}
	s.SnapshotStore = snaps

	logger := s.cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	opts := []StreamLayerOption{WithLogger(logger.With("logger", "raft-net"))}
	if s.cfg.TLS != nil {
		opts = append(opts, WithTLSRootCAs(s.cfg.TLS, s.cfg.TLSRootCAs))
	}
	stream, err := NewPartitionableStreamLayer(ctx, s.cfg.BindAddr, s.cfg.AdvertiseAddr, opts...)
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
	if s.wal != nil {
		if err := s.wal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raftlog: close %s: %w", walDirName, err))
		}
	}
	if s.walDB != nil {
		if err := s.walDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raftlog: close %s meta: %w", walDirName, err))
		}
	}
	if s.lock != nil {
		_ = s.lock.Close() // releases the flock
	}
	return errors.Join(errs...)
}
