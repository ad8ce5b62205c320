package lazyfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is one lazyfs mount. Its methods are safe for concurrent use.
type FS struct {
	backing, mountpoint string
	o                   options

	mu  sync.Mutex
	g   *gen
	srv *fuse.Server

	droppedBytes, droppedFiles, drops int64
	syncedBytes, syncs                int64 // of generations already gone
}

type options struct {
	fallback bool
	debug    bool
	log      *slog.Logger
	wait     time.Duration
}

// Option configures Mount.
type Option func(*options)

// WithFusermountFallback lets go-fuse fall back to fusermount when mount(2)
// fails (e.g. not root). The default mounts directly and fails instead.
func WithFusermountFallback() Option { return func(o *options) { o.fallback = true } }

// WithDebug logs every FUSE request (very verbose).
func WithDebug() Option { return func(o *options) { o.debug = true } }

// WithLogger sets the logger for unmount warnings (default slog.Default).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithUnmountWait bounds how long Unmount and PowerCycle wait for the old
// FUSE connection to end (default 5 s). It outlives the unmount only if
// another mount namespace still holds a copy of the mount; requests that
// reach it get EIO.
func WithUnmountWait(d time.Duration) Option { return func(o *options) { o.wait = d } }

// Stats are counters of one FS (all mounts of it so far).
type Stats struct {
	PendingBytes int64 // bytes written (and truncates) not yet synced, now
	PendingFiles int   // files with unsynced data, now
	SyncedBytes  int64 // bytes written to backing files by fsync, in total
	Syncs        int64 // fsync/fdatasync requests (and O_SYNC writes), in total
	DroppedBytes int64 // unsynced bytes discarded by drops and power cycles, in total
	DroppedFiles int64 // files that lost data, in total
	Drops        int64 // DropUnsynced and PowerCycle calls
}

// Dropped is what one DropUnsynced or PowerCycle discarded.
type Dropped struct {
	Bytes int64 // bytes written (plus truncates) since each file's last sync
	Files int
}

// Mount mounts a lazyfs mirror of the directory backing on mountpoint
// (both must exist).
func Mount(backing, mountpoint string, opts ...Option) (*FS, error) {
	o := options{log: slog.Default(), wait: 5 * time.Second}
	for _, op := range opts {
		op(&o)
	}
	for _, d := range []string{backing, mountpoint} {
		st, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("lazyfs: %s is not a directory", d)
		}
	}
	f := &FS{backing: backing, mountpoint: mountpoint, o: o}
	if err := f.mountLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// Mountpoint returns the directory the FS is mounted on.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Backing returns the mirrored directory.
func (f *FS) Backing() string { return f.backing }

func (f *FS) mountLocked() error {
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("lazyfs: stat %s: %w", f.backing, err)
	}
	g := newGen()
	root := &fs.LoopbackRoot{Path: f.backing, Dev: uint64(st.Dev)}
	rn := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, g: g}
	root.RootNode = rn
	zero := time.Duration(0)
	srv, err := fs.Mount(f.mountpoint, rn, &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:               f.backing,
			Name:                 "lazyfs",
			DirectMount:          f.o.fallback,
			DirectMountStrict:    !f.o.fallback,
			DisableReadDirPlus:   true,
			DisabledCapabilities: fuse.CAP_PASSTHROUGH | fuse.CAP_WRITEBACK_CACHE,
			Debug:                f.o.debug,
		},
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s on %s: %w", f.backing, f.mountpoint, err)
	}
	f.g, f.srv = g, srv
	return nil
}

// unmountLocked kills the current generation (from now on its requests
// fail with EIO) and unmounts it, lazily if busy.
func (f *FS) unmountLocked() error {
	if f.srv == nil {
		return nil
	}
	g, srv := f.g, f.srv
	g.dead.Store(true)
	err := syscall.Unmount(f.mountpoint, 0)
	lazy := false
	if errors.Is(err, syscall.EBUSY) {
		lazy = true
		err = syscall.Unmount(f.mountpoint, syscall.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) { // EINVAL: no longer mounted
		return fmt.Errorf("lazyfs: unmount %s: %w", f.mountpoint, err)
	}
	if lazy {
		// the connection lives until its last user lets go; it is dead
		f.o.log.Info("lazyfs: mount busy, detached lazily; requests still reaching it fail with EIO", "mountpoint", f.mountpoint)
	} else {
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(f.o.wait):
			f.o.log.Warn("lazyfs: FUSE connection still open after unmount (a copy of the mount in another mount namespace?); its requests fail with EIO",
				"mountpoint", f.mountpoint)
		}
	}
	f.syncedBytes += g.synced.Load()
	f.syncs += g.syncs.Load()
	f.srv, f.g = nil, nil
	return nil
}

// Unmount unmounts the FS (lazily if busy). It does not flush: unsynced
// writes are discarded, as by a power loss. Call Sync first for a clean
// shutdown.
func (f *FS) Unmount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.g
	if err := f.unmountLocked(); err != nil {
		return err
	}
	if g != nil {
		g.dropAll()
		g.closeAll()
	}
	return nil
}

// Sync flushes every pending write to the backing files, like sync(2).
func (f *FS) Sync() error {
	f.mu.Lock()
	g := f.g
	f.mu.Unlock()
	if g == nil {
		return errors.New("lazyfs: not mounted")
	}
	return g.syncAll()
}

func (f *FS) account(bytes int64, files int) Dropped {
	f.droppedBytes += bytes
	f.droppedFiles += int64(files)
	f.drops++
	return Dropped{Bytes: bytes, Files: files}
}

// DropUnsynced discards every unsynced write of the live mount: each file
// reverts to its content at its last sync. Pages the kernel still caches
// for files that are open now are not invalidated: use it only when
// nothing has the files open (FUSE drops the page cache on the next open),
// or use PowerCycle.
func (f *FS) DropUnsynced() Dropped {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.g == nil {
		return Dropped{}
	}
	return f.account(f.g.dropAll())
}

// PowerCycle models a power loss of the machine holding the mount. The
// caller must have SIGKILLed the processes using it. It cuts the FUSE
// connection and unmounts (lazily if still busy), discards every unsynced
// write, and mounts a fresh file system on the same mountpoint, so no
// stale page or attribute survives in the kernel.
func (f *FS) PowerCycle() (Dropped, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.g
	if err := f.unmountLocked(); err != nil {
		return Dropped{}, err
	}
	var d Dropped
	if g != nil {
		d = f.account(g.dropAll())
		g.closeAll()
	}
	if err := f.mountLocked(); err != nil {
		return d, fmt.Errorf("lazyfs: remount after power loss: %w", err)
	}
	return d, nil
}

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{DroppedBytes: f.droppedBytes, DroppedFiles: f.droppedFiles, Drops: f.drops,
		SyncedBytes: f.syncedBytes, Syncs: f.syncs}
	if f.g != nil {
		s.PendingBytes, s.PendingFiles = f.g.pending()
		s.SyncedBytes += f.g.synced.Load()
		s.Syncs += f.g.syncs.Load()
	}
	return s
}
