// Package diskguard refuses writes before a data directory's file system
// fills up, like etcd's NOSPACE alarm: a store that runs out of space in
// the middle of applying a committed entry can only stop, so new writes are
// refused while free space is below a watermark, and accepted again as soon
// as space returns.
package diskguard

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// ErrNoSpace is returned by Check while free space is below the watermark.
var ErrNoSpace = errors.New("not enough free disk space")

// DefaultMinFree is the watermark factstr-node uses unless told otherwise:
// room for a few full batches and a snapshot of a small store.
const DefaultMinFree = 256 << 20

// recheck bounds how often Check asks the file system; a burst of writes
// costs one statfs per interval.
const recheck = 100 * time.Millisecond

// FreeFunc reports the bytes available to an unprivileged writer under dir.
type FreeFunc func(dir string) (uint64, error)

// Statfs is the FreeFunc of the real file system.
func Statfs(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Guard watches one directory. The zero of minFree disables it. It is safe
// for concurrent use.
type Guard struct {
	dir     string
	minFree uint64
	free    FreeFunc
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	checked time.Time
	low     bool
	lastErr error
}

// Option configures New.
type Option func(*Guard)

// WithFreeFunc replaces the file system query (tests).
func WithFreeFunc(f FreeFunc) Option { return func(g *Guard) { g.free = f } }

// WithClock replaces the clock that paces the queries (tests).
func WithClock(now func() time.Time) Option { return func(g *Guard) { g.now = now } }

// New returns a guard that refuses writes while dir's file system has less
// than minFree bytes available. minFree 0 turns it off.
func New(dir string, minFree uint64, log *slog.Logger, opts ...Option) *Guard {
	if log == nil {
		log = slog.Default()
	}
	g := &Guard{dir: dir, minFree: minFree, free: Statfs, now: time.Now, log: log}
	for _, o := range opts {
		o(g)
	}
	return g
}

// Check returns an error wrapping ErrNoSpace while free space is below the
// watermark, nil otherwise. A file system that cannot be queried does not
// block writes (the write itself will report the real error).
func (g *Guard) Check() error {
	if g == nil || g.minFree == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.checked.IsZero() && now.Sub(g.checked) < recheck {
		return g.lastErr
	}
	g.checked = now
	free, err := g.free(g.dir)
	if err != nil {
		g.log.Debug("free disk space unknown", "dir", g.dir, "error", err)
		g.lastErr = nil
		return nil
	}
	low := free < g.minFree
	switch {
	case low && !g.low:
		g.log.Error("free disk space below the watermark: refusing writes until space returns",
			"dir", g.dir, "free_bytes", free, "min_free_bytes", g.minFree)
	case !low && g.low:
		g.log.Info("free disk space back above the watermark: accepting writes", "dir", g.dir, "free_bytes", free)
	}
	g.low = low
	g.lastErr = nil
	if low {
		g.lastErr = fmt.Errorf("%w: %d bytes free under %s, writes need at least %d (--min-free-disk); free space or grow the volume",
			ErrNoSpace, free, g.dir, g.minFree)
	}
	return g.lastErr
}

// Low reports whether the guard refused writes at its last check (metrics).
func (g *Guard) Low() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.low
}
