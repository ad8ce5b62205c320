package boltstore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/boltcheck"
	"github.com/factstr/factstr-go/internal/fsutil"
)

// Snapshot writes a consistent copy of the whole store file to w. It runs
// in a read transaction, so Apply goes on meanwhile; the copy holds the
// state as of the last commit before it began, applied index included.
func (s *Store) Snapshot(w io.Writer) error {
	if s.closing.Load() {
		return contract.ErrClosed
	}
	err := s.be.view(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.path, err)
	}
	return nil
}

// Restore replaces the whole state with a snapshot written by Snapshot:
// the snapshot goes to a temporary file next to the store, is checked and
// fsynced, and is renamed over the store file, which is then reopened.
// Readers are held off only for the swap. Afterwards the Hub is reset to
// the restored head, which may be lower than before.
func (s *Store) Restore(r io.Reader) error {
	if s.closing.Load() {
		return contract.ErrClosed
	}
	tmp, err := fsutil.WriteTemp(filepath.Dir(s.path), filepath.Base(s.path)+".restore-*", 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", s.path, err)
	}
	defer os.Remove(tmp) // a no-op once renamed
	if err := checkSnapshot(tmp); err != nil {
		return fmt.Errorf("restore %s: %w", s.path, err)
	}

	s.be.applyMu.Lock()
	defer s.be.applyMu.Unlock()
	s.be.dbMu.Lock()
	if s.be.db == nil {
		s.be.dbMu.Unlock()
		return contract.ErrClosed
	}
	// The snapshot replaces every entry applied so far, committed or not.
	s.be.rollbackOpenLocked()
	if err := s.be.db.Close(); err != nil {
		s.log.Warn("closing the store file before restore", "error", err)
	}
	s.be.db = nil
	if err := os.Rename(tmp, s.path); err != nil {
		s.be.dbMu.Unlock()
		return fmt.Errorf("restore %s: the store is closed: %w", s.path, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("syncing the directory after restore", "error", err)
	}
	db, st, err := openFile(s.path, s.opts.noSync)
	if err != nil {
		s.be.dbMu.Unlock()
		return fmt.Errorf("restore %s: the store is closed: %w", s.path, err)
	}
	s.be.db = db
	s.be.failed = nil
	s.be.applied.Store(st.applied)
	s.be.head.Store(st.head)
	s.be.dbMu.Unlock()
	s.hub.Reset(st.head)
	s.log.Info("restored from snapshot", "head", st.head, "applied", st.applied)
	return nil
}

// checkSnapshot refuses a file that is not a store of this schema before
// the current state is given up for it.
func checkSnapshot(path string) error {
	if err := boltcheck.Check(path); err != nil {
		return fmt.Errorf("snapshot is damaged: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return fmt.Errorf("snapshot is not a bbolt file: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil && !bytes.Equal(name, bucketMembers) && !bytes.Equal(name, bucketGroups) && !bytes.Equal(name, bucketParked) {
				return fmt.Errorf("snapshot has no %s bucket", name)
			}
		}
		if v := uint64FromBytes(tx.Bucket(bucketMeta).Get(metaSchema)); v != schemaVersion {
			return fmt.Errorf("snapshot schema version %d, this build reads %d", v, schemaVersion)
		}
		return nil
	})
}
