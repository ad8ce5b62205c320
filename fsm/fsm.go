package fsm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// FSM applies committed Raft entries to a boltstore opened in replicated
// mode. The response of each applied entry (ApplyFuture.Response) is a
// []command.Result, one per command, or an error for an entry that could
// not be decoded.
type FSM struct {
	store   *boltstore.Store
	applied *streams.Watermark // the last Raft index this FSM has applied
	logger  *slog.Logger
	// OnApply, if set, is called after each applied batch with the number of
	// entries and commands and the time the batch took to apply (decode and
	// one bbolt transaction): for metrics. It must not block.
	OnApply func(entries, commands int, took time.Duration)
	// OnCommitted, if set, is called with the bytes of every command entry
	// of a batch before the batch is applied: the entry is committed. On
	// the leader they are the slice given to raft.Apply, so a proposer can
	// tell its own entries (cluster's commitWatch). It must not block.
	OnCommitted func(data []byte)
	// Fatal is called when the store cannot apply committed entries (a full
	// disk, an I/O error). Carrying on would make this replica diverge from
	// the others; stopping makes it rebuild from its snapshot and log on
	// restart. The default logs one line naming the file and the error and
	// exits the process with status 1. Tests replace it; if it returns, the
	// batch is answered with the error and the applied index stays put.
	Fatal func(err error)
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over store.
func New(store *boltstore.Store, logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	f := &FSM{store: store, applied: streams.NewWatermark(store.Replica().AppliedIndex()), logger: logger}
	f.Fatal = func(err error) {
		f.logger.Error("stopping: the state machine cannot apply committed raft entries; fix the cause (disk space, I/O errors) and restart: the node rebuilds from its snapshot and log",
			"file", f.store.Replica().Path(), "error", err)
		os.Exit(1)
	}
	return f
}

// Store returns the store the FSM applies to.
func (f *FSM) Store() *boltstore.Store { return f.store }

// AppliedIndex is the last Raft index whose effects are visible to readers of
// the store. Unlike raft.AppliedIndex it never runs ahead of the FSM.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Value() }

// WaitApplied blocks until the FSM has applied index, or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	_, err := f.applied.WaitAtLeast(ctx, index)
	return err
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one bbolt transaction for the
// whole batch, so a burst of appends costs one commit.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	resp := make([]any, len(logs))
	entries := make([]command.Entry, len(logs))
	commands := 0
	for i, l := range logs {
		entries[i].Index = l.Index
		if l.Type != raft.LogCommand {
			continue // configuration entries only move the applied index
		}
		if f.OnCommitted != nil {
			f.OnCommitted(l.Data)
		}
		cmds, err := command.Decode(l.Data)
		if err != nil {
			// Every node decodes the same bytes the same way, so skipping is
			// deterministic; the proposer learns why.
			f.logger.Error("skipping undecodable raft entry", "index", l.Index, "error", err)
			resp[i] = err
			continue
		}
		entries[i].Commands = cmds
		commands += len(cmds)
	}
	results, err := f.store.Apply(entries)
	if err != nil {
		// The state on disk no longer follows the log (see Fatal).
		err = fmt.Errorf("apply raft entries %d..%d to %s: %w", logs[0].Index, logs[len(logs)-1].Index, f.store.Replica().Path(), err)
		f.Fatal(err)
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	for i := range logs {
		if resp[i] == nil && results[i] != nil {
			resp[i] = results[i]
		}
	}
	f.applied.Publish(logs[len(logs)-1].Index)
	if f.OnApply != nil {
		f.OnApply(len(logs), commands, time.Since(start))
	}
	return resp
}

// Snapshot implements raft.FSM. The copy is taken in Persist from a bbolt
// read transaction; it may include entries applied after Raft's snapshot
// index, which is harmless because the applied index travels inside the copy
// and replayed entries at or below it are skipped.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{store: f.store}, nil
}

// BackupHeader starts a backup written by WriteBackup. Raft's own snapshots
// carry no header; a backup restored with raft.Restore does, and that is how
// Restore tells the two apart.
const BackupHeader = "FACTSTR-BACKUP-1\n"

// WriteBackup writes a backup of store (see BackupHeader) to w.
func WriteBackup(store *boltstore.Store, w io.Writer) error {
	if _, err := io.WriteString(w, BackupHeader); err != nil {
		return err
	}
	return store.Snapshot(w)
}

// Restore implements raft.FSM: the snapshot replaces the whole state.
//
// A backup (from this or another cluster) carries the applied index and
// durable leases and node incarnations of the cluster it was taken from,
// and they mean nothing in this Raft log: its leases are released, its
// incarnation records dropped and its applied index reset to 0,
// so every entry after the restore point is applied. Every node installs
// the same bytes and does the same, so replicas stay identical.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	head, _ := br.Peek(len(BackupHeader))
	backup := string(head) == BackupHeader
	if backup {
		if _, err := br.Discard(len(BackupHeader)); err != nil {
			return err
		}
	}
	if err := f.store.Restore(br); err != nil {
		return fmt.Errorf("restore fsm snapshot: %w", err)
	}
	if backup {
		next := f.store.Replica().AppliedIndex() + 1
		if _, err := f.store.Apply([]command.Entry{{Index: next, Commands: []command.Command{command.ReleaseHolders{}}}}); err != nil {
			return fmt.Errorf("release the backup's durable leases: %w", err)
		}
		if err := f.store.Replica().ResetAppliedIndex(0); err != nil {
			return err
		}
		if err := f.store.Replica().ForgetIncarnations(); err != nil {
			return err
		}
		f.logger.Info("restored a backup", "head", f.store.Replica().Head())
	}
	f.applied.Reset(f.store.Replica().AppliedIndex())
	return nil
}

// Close wakes every waiter for good.
func (f *FSM) Close() { f.applied.Close() }

type snapshot struct{ store *boltstore.Store }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.store.Snapshot(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist fsm snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
