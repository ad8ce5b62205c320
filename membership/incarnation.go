package membership

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/factstr/factstr-go/internal/fsutil"
)

// IncarnationFileName is the file in the data directory that holds its
// incarnation.
const IncarnationFileName = "incarnation"

// IncarnationFile returns the incarnation of dataDir: a random 128-bit id,
// as 32 hex digits, created the first time and read back ever after. A wiped
// or replaced data directory therefore gets a new incarnation, which is how
// peers tell a node that lost its Raft state (its vote, its term) from the
// node that had the same NodeID before. Raft requires a server's current
// term and vote to survive restarts (the Raft paper, Figure 2, "persistent
// state on all servers"); a wiped node has lost them.
//
// The file is written to a temporary name, fsynced, then linked into place
// and the directory fsynced, so a crash leaves either no file or a complete
// one; and if two processes race, both end up with the same id. A file that
// exists but does not hold an incarnation is an error, never silently
// replaced: that would make an intact node look wiped.
func IncarnationFile(dataDir string) (string, error) {
	if dataDir == "" {
		return "", errors.New("membership: incarnation: data directory not set")
	}
	path := filepath.Join(dataDir, IncarnationFileName)

	id, err := readIncarnation(path)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("membership: incarnation: %w", err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("membership: incarnation: %w", err)
	}
	id = hex.EncodeToString(raw[:])

	tmpName, err := fsutil.WriteTemp(dataDir, "."+IncarnationFileName+".tmp-*", 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, id+"\n")
		return err
	})
	if err != nil {
		return "", fmt.Errorf("membership: incarnation: %w", err)
	}
	defer os.Remove(tmpName) // after a successful link the name is just a second link

	// Link, unlike rename, refuses to replace an existing file: if another
	// process created the incarnation meanwhile, we adopt its id.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readIncarnation(path)
		}
		// Some filesystems have no hard links; fall back to rename.
		if rerr := os.Rename(tmpName, path); rerr != nil {
			return "", fmt.Errorf("membership: incarnation: install %s: %w", path, errors.Join(err, rerr))
		}
	}
	if err := fsutil.SyncDir(dataDir); err != nil {
		return "", fmt.Errorf("membership: incarnation: %w", err)
	}
	return id, nil
}

// readIncarnation reads and checks an incarnation file. A missing file is
// reported as fs.ErrNotExist.
func readIncarnation(path string) (string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("membership: incarnation: %w", err)
	}
	id := strings.TrimSpace(string(buf))
	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 16 {
		return "", fmt.Errorf("membership: incarnation: %s holds %q, not 32 hex digits; it is corrupt: restore it, or delete it only if this data directory's Raft state is gone too", path, id)
	}
	return strings.ToLower(id), nil
}
