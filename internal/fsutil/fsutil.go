package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data; the file gets mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return WriteFileFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileFunc atomically replaces path with what write writes. When write
// fails, path is left as it was and write's error is returned.
func WriteFileFunc(path string, perm fs.FileMode, write func(io.Writer) error) error {
	tmp, err := WriteTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*", perm, write)
	if err != nil {
		return err
	}
	if err := Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// WriteTemp creates a new file in dir named after pattern (as
// os.CreateTemp), fills it with write, fsyncs and closes it and returns its
// name. The caller installs it with Rename (or os.Link and SyncDir) or
// removes it. On error nothing is left behind.
func WriteTemp(dir, pattern string, perm fs.FileMode, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// Rename renames oldpath to newpath and fsyncs newpath's directory, so the
// rename survives a crash once Rename returns.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash. Platforms that cannot sync a directory (the call
// fails with os.ErrInvalid) are not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, os.ErrInvalid) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
