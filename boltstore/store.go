package boltstore

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/boltcheck"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/streams"
)

// ErrReplicated is returned by the embedded write methods of a store opened
// WithReplicated: such a store changes only through Apply.
var ErrReplicated = errors.New("boltstore: the store is replicated; it changes only through the Raft log (Apply)")

// ErrCorrupt is returned by Open for a file whose structure is damaged
// (truncated, overwritten pages). A replica rebuilds such a file from its
// snapshot and log; an embedded store has to be restored from a backup.
var ErrCorrupt = boltcheck.ErrCorrupt

// openTimeout bounds the wait for bbolt's file lock, so a second process on
// the same file fails instead of hanging.
const openTimeout = 10 * time.Second

const defaultIdemRetention = 24 * time.Hour

type options struct {
	limits        contract.Limits
	now           func() time.Time
	logger        *slog.Logger
	noSync        bool
	replicated    bool
	idemRetention time.Duration
	minFreeDisk   uint64
	streams       streams.Config // only its budget fields
	// commitInterval > 0 lets Apply keep its write transaction open for up
	// to that long (see deferred.go).
	commitInterval time.Duration
}

// Option configures Open.
type Option func(*options)

// WithStreamBudgets bounds what the store's stream subscriptions hold read
// ahead of their handlers: per subscription, for all of them, and how long
// a handler may hold one delivery (see streams.Config; zero: defaults).
func WithStreamBudgets(subscriberBytes, nodeBytes int64, stallTimeout time.Duration) Option {
	return func(o *options) {
		o.streams.SubscriberBytes, o.streams.NodeBytes, o.streams.StallTimeout = subscriberBytes, nodeBytes, stallTimeout
	}
}

// WithLimits sets the limits the embedded write methods enforce (default
// contract.DefaultLimits). Apply does not apply them: they are the
// proposer's, and replicas may be configured differently.
func WithLimits(l contract.Limits) Option { return func(o *options) { o.limits = l } }

// WithClock sets the clock that stamps OccurredAt in embedded mode. In
// replicated mode the proposer's command carries the time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithNoSync turns off the fsync of each commit (bbolt NoSync). Embedded
// appends are then no longer durable on acknowledgement; a Raft FSM sets it
// because the Raft log is the durability.
func WithNoSync(noSync bool) Option { return func(o *options) { o.noSync = noSync } }

// WithCommitInterval lets a replicated store that is not fsynced
// (WithReplicated, WithNoSync) keep Apply's write transaction open across
// calls and commit it once it is d old (or large), instead of once per
// call: one commit then carries many Raft entries. Every read commits the
// open transaction first, so readers see every applied entry as before.
// After a failed commit the store refuses applies and reads: it must be
// rebuilt from the Raft log. Ignored unless the store is replicated and
// not synced; 0 (the default) commits every Apply.
func WithCommitInterval(d time.Duration) Option { return func(o *options) { o.commitInterval = d } }

// WithIdempotencyRetention sets how long embedded mode remembers an
// idempotency key (contract.WithIdempotencyKey) before it may be pruned
// (default 24h; 0 keeps keys forever). In replicated mode the proposer
// prunes with command.PruneIdempotency.
func WithIdempotencyRetention(d time.Duration) Option {
	return func(o *options) { o.idemRetention = d }
}

// WithMinFreeDisk refuses embedded appends with ErrNoSpace while the file
// system holding the store has fewer than bytes available, so the store
// never runs out of space in the middle of a commit (0, the default: off).
func WithMinFreeDisk(bytes uint64) Option { return func(o *options) { o.minFreeDisk = bytes } }

// ErrNoSpace is returned by appends refused for lack of free disk space
// (WithMinFreeDisk); it clears itself when space returns.
var ErrNoSpace = diskguard.ErrNoSpace

// WithReplicated opens the store as a state machine: the embedded write
// methods (Append, AppendIf, StreamAllDurable, StreamToDurable) return
// ErrReplicated, and Open leaves durable leases alone because releasing
// them locally would make this replica diverge from the others.
func WithReplicated() Option { return func(o *options) { o.replicated = true } }

// backend owns the bbolt file: the DB handle and the lock that guards its
// swap (Restore) and close, the lock that orders every write (Apply,
// Restore, Close), the applied index and head written with each commit, and
// the write transaction a deferring replica keeps open across applies
// (deferred.go). Every transaction on the file goes through it; it is
// separate from Store, which adds the public contract, the stream engine and
// the hub on top, the way etcd separates its backend from its server.
type backend struct {
	path     string
	log      *slog.Logger
	interval time.Duration // commitInterval: 0 commits each Apply

	// applyMu orders every change: Apply, Restore and Close.
	applyMu sync.Mutex
	// dbMu guards db against the swap in Restore and the close in Close;
	// transactions hold it shared.
	dbMu sync.RWMutex
	db   *bbolt.DB // nil once closed

	applied atomic.Uint64
	head    atomic.Uint64

	// The open write transaction of deferred commits (deferred.go), guarded
	// by applyMu like failed, the error that ended applying for good.
	open    *openTx
	failed  error
	dirty   atomic.Bool // open is set: a reader commits it first
	commits atomic.Uint64
}

// Store is the bbolt event store. It is safe for concurrent use.
type Store struct {
	path     string
	opts     options
	log      *slog.Logger
	hub      *streams.Hub
	engine   *streams.Engine
	wasClean bool
	disk     *diskguard.Guard

	closing atomic.Bool // set when Close begins: public calls are refused

	be backend
	gc committer
}

var _ contract.EventStore = (*Store)(nil)
var _ streams.Source = (*Store)(nil)

// Open opens (creating if needed) the store file at path.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{limits: contract.DefaultLimits, now: time.Now, logger: slog.Default(), idemRetention: defaultIdemRetention}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if !o.replicated || !o.noSync {
		o.commitInterval = 0 // a commit is an embedded append's durability
	}
	s := &Store{path: path, opts: o, log: o.logger.With("store", "boltstore", "path", path)}
	s.be.path, s.be.log, s.be.interval = path, s.log, o.commitInterval
	s.gc.s = s
	s.disk = diskguard.New(filepath.Dir(path), o.minFreeDisk, s.log)
	db, state, err := openFile(path, o.noSync)
	if err != nil {
		return nil, err
	}
	s.be.db, s.wasClean = db, state.wasClean
	s.be.applied.Store(state.applied)
	s.be.head.Store(state.head)
	s.hub = streams.NewHub(state.head)
	cfg := streams.Config{Source: s, Hub: s.hub, HolderPrefix: "bolt", Logger: o.logger,
		SubscriberBytes: o.streams.SubscriberBytes, NodeBytes: o.streams.NodeBytes, StallTimeout: o.streams.StallTimeout}
	if !o.replicated {
		cfg.Durables = (*durables)(s)
	}
	s.engine = streams.New(cfg)
	if !o.replicated && state.heldLeases > 0 {
		// Leases held in the file belong to subscriptions of a process
		// that is gone; left held they would refuse those names forever.
		if _, err := s.Apply([]command.Entry{{Index: s.be.applied.Load() + 1, Commands: []command.Command{command.ReleaseHolders{}}}}); err != nil {
			_ = s.be.closeDB()
			return nil, fmt.Errorf("open %s: release durable leases of the previous process: %w", path, err)
		}
		s.log.Info("released durable stream leases left by the previous process", "count", state.heldLeases)
	}
	s.log.Debug("opened", "head", state.head, "applied", state.applied, "was_clean", state.wasClean, "replicated", o.replicated)
	return s, nil
}

// fileState is what Open learns from an existing file.
type fileState struct {
	applied, head uint64
	wasClean      bool
	heldLeases    int
}

// openFile opens the bbolt file, creates the buckets of a new file, checks
// the schema and clears the clean marker with a synced commit before any
// other write, so a crash from here on is seen by the next Open.
func openFile(path string, noSync bool) (db *bbolt.DB, st fileState, err error) {
	// bbolt faults (SIGBUS) or panics on a damaged file; the check reads it
	// with plain reads first, and a fault that still happens in the mapped
	// file during the open below becomes an error instead of a crash.
	if err := boltcheck.Check(path); err != nil {
		return nil, fileState{}, fmt.Errorf("open: %w", err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        openTimeout,
		NoFreelistSync: true, // the freelist is rebuilt at open; commits write less
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fileState{}, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		fresh := tx.Bucket(bucketMeta) == nil
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if fresh {
			if err := meta.Put(metaSchema, seqKey(schemaVersion)); err != nil {
				return err
			}
		} else if v := uint64FromBytes(meta.Get(metaSchema)); v != schemaVersion {
			return fmt.Errorf("schema version %d, this build reads %d", v, schemaVersion)
		}
		// A new file has no previous process to have crashed.
		st.wasClean = fresh || bytes1(meta.Get(metaClean))
		st.applied = uint64FromBytes(meta.Get(metaApplied))
		st.head = uint64FromBytes(meta.Get(metaHead))
		c := tx.Bucket(bucketDurables).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			d, err := decodeDurable(v)
			if err != nil {
				return fmt.Errorf("durable %q: %w", k, err)
			}
			if d.holder != "" {
				st.heldLeases++
			}
		}
		return meta.Put(metaClean, []byte{0})
	})
	if err != nil {
		_ = db.Close()
		return nil, fileState{}, fmt.Errorf("open %s: %w", path, err)
	}
	// The marker clear above was synced; later commits follow the option.
	db.NoSync = noSync
	return db, st, nil
}

func bytes1(v []byte) bool { return len(v) == 1 && v[0] == 1 }

// Path is the store's file.
func (s *Replica) Path() string { return s.path }

// AppliedIndex is the index of the last applied entry.
func (s *Replica) AppliedIndex() uint64 { return s.be.applied.Load() }

// Head is the last committed sequence number.
func (s *Replica) Head() uint64 { return s.be.head.Load() }

// Hub broadcasts the committed head; a cluster's stream engine waits on it.
func (s *Replica) Hub() *streams.Hub { return s.hub }

// WasClean reports whether the process that last had this file open closed
// it with Close (true for a file this Open created). After a crash with
// WithNoSync the file may be missing recent commits, and a replica should
// rebuild it from a snapshot and the log.
func (s *Replica) WasClean() bool { return s.wasClean }

// view runs fn in a read transaction that sees every applied entry.
func (b *backend) view(fn func(*bbolt.Tx) error) error {
	if err := b.settle(); err != nil {
		return err
	}
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return contract.ErrClosed
	}
	return b.db.View(fn)
}

// Close ends every subscription (releasing durable names, in embedded mode
// through Apply), then syncs the file, writes the clean marker and closes
// it. Later calls, a second Close or an Abandon too, return
// contract.ErrClosed.
func (s *Store) Close() error {
	if !s.closing.CompareAndSwap(false, true) {
		return contract.ErrClosed
	}
	s.engine.Close()
	s.hub.Close()
	s.be.applyMu.Lock()
	defer s.be.applyMu.Unlock()
	return s.be.closeDB()
}

// closeDB marks the file clean and closes it; applyMu is held or not yet
// needed.
func (b *backend) closeDB() error {
	b.dbMu.Lock()
	defer b.dbMu.Unlock()
	if b.db == nil {
		return nil
	}
	if err := b.commitOpenLocked(); err != nil {
		// The file misses applied entries: leave it without the clean
		// marker, so the next Open rebuilds it.
		b.rollbackOpenLocked()
		_ = b.db.Close()
		b.db = nil
		return fmt.Errorf("close %s: %w", b.path, err)
	}
	db := b.db
	b.db = nil
	// With NoSync the last commits may not be on disk yet: sync them before
	// the marker is written, so the marker never claims more than the file
	// holds, and sync the marker itself.
	err := db.Sync()
	if err == nil {
		err = db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaClean, []byte{1})
		})
	}
	if err == nil {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", b.path, err)
	}
	return nil
}

// Abandon ends the store the way a crash would, for tests: subscriptions
// end and the file is closed without a sync and without the clean marker,
// so the next Open reports WasClean false. Later calls return
// contract.ErrClosed, an Abandon or Close after Close too.
func (s *Store) Abandon() error {
	if !s.closing.CompareAndSwap(false, true) {
		return contract.ErrClosed
	}
	s.engine.Close()
	s.hub.Close()
	s.be.applyMu.Lock()
	defer s.be.applyMu.Unlock()
	s.be.dbMu.Lock()
	defer s.be.dbMu.Unlock()
	if s.be.db == nil {
		return nil
	}
	s.be.rollbackOpenLocked()
	err := s.be.db.Close()
	s.be.db = nil
	return err
}
