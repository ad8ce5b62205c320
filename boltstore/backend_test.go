package boltstore

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// newTestBackend opens a fresh store file as a backend that defers its
// commits for an hour, so only the calls under test commit.
func newTestBackend(t *testing.T) *backend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backend.db")
	db, _, err := openFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{path: path, log: slog.New(slog.NewTextHandler(io.Discard, nil)), interval: time.Hour, db: db}
	t.Cleanup(func() {
		b.applyMu.Lock()
		defer b.applyMu.Unlock()
		_ = b.closeDB()
	})
	return b
}

// openWith begins a write transaction, puts key in meta and keeps it open.
func openWith(t *testing.T, b *backend, key string) *openTx {
	t.Helper()
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	tx, err := b.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApplier(tx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Bucket(bucketMeta).Put([]byte(key), []byte{1}); err != nil {
		t.Fatal(err)
	}
	return b.keepOpen(tx, a)
}

func hasMeta(t *testing.T, b *backend, key string) bool {
	t.Helper()
	var found bool
	if err := b.view(func(tx *bbolt.Tx) error {
		found = tx.Bucket(bucketMeta).Get([]byte(key)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func TestBackendReadCommitsTheOpenTransaction(t *testing.T) {
	b := newTestBackend(t)
	openWith(t, b, "k1")
	if !b.dirty.Load() || b.Commits() != 0 {
		t.Fatalf("after keepOpen: dirty %v commits %d, want true 0", b.dirty.Load(), b.Commits())
	}
	if !hasMeta(t, b, "k1") {
		t.Fatal("a read did not see the write of the open transaction")
	}
	if b.dirty.Load() || b.open != nil || b.Commits() != 1 {
		t.Fatalf("after the read: dirty %v open %v commits %d, want false nil 1", b.dirty.Load(), b.open, b.Commits())
	}
}

func TestBackendCommitIfDueOnCommandCount(t *testing.T) {
	b := newTestBackend(t)
	o := openWith(t, b, "k")
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	if err := b.commitIfDue(); err != nil || b.open == nil {
		t.Fatalf("young, small transaction: err %v open %v, want it kept open", err, b.open)
	}
	o.a.commands = maxOpenCommands
	if err := b.commitIfDue(); err != nil || b.open != nil || b.Commits() != 1 {
		t.Fatalf("full transaction: err %v open %v commits %d, want it committed", err, b.open, b.Commits())
	}
}

func TestBackendRollbackDropsTheOpenTransaction(t *testing.T) {
	b := newTestBackend(t)
	openWith(t, b, "gone")
	b.applyMu.Lock()
	b.rollbackOpenLocked()
	b.applyMu.Unlock()
	if b.dirty.Load() || hasMeta(t, b, "gone") || b.Commits() != 0 {
		t.Fatal("a rolled back transaction left its write or its dirty flag")
	}
}

func TestBackendFailureIsPermanent(t *testing.T) {
	b := newTestBackend(t)
	openWith(t, b, "lost")
	cause := errors.New("disk full")
	b.applyMu.Lock()
	err := b.failOpenLocked(cause)
	again := b.commitOpenLocked()
	b.applyMu.Unlock()
	if !errors.Is(err, cause) || !errors.Is(again, cause) {
		t.Fatalf("failOpenLocked %v, then commitOpenLocked %v; want both to carry %v", err, again, cause)
	}
	if b.open != nil {
		t.Fatal("the failed transaction is still open")
	}
}
