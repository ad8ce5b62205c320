package lazyfs

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// gen is one mount's worth of pending state. A power cycle kills the
// generation (every later request on it fails with EIO, so nothing it
// held can reach the backing files) and mounts a fresh one.
type gen struct {
	dead atomic.Bool

	mu    sync.Mutex
	files map[uint64]*fileState // by backing inode number

	synced, syncs atomic.Int64
}

func newGen() *gen { return &gen{files: map[uint64]*fileState{}} }

// acquire returns the state of backing inode ino with one more reference;
// fd (if >= 0 and writable) is dup'ed into the state when it has none.
func (g *gen) acquire(ino uint64, fd int, writable bool) (*fileState, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.files[ino]
	if !ok {
		s = newFileState(ino)
		g.files[ino] = s
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 && writable {
		d, err := unix.Dup(fd)
		if err != nil {
			if s.refs == 0 && !s.dirty {
				delete(g.files, ino)
			}
			return nil, err
		}
		unix.CloseOnExec(d)
		s.fd = d
	}
	s.refs++
	return s, nil
}

// release drops one reference; a clean state without references is
// forgotten.
func (g *gen) release(s *fileState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	g.gcLocked(s)
}

// gcLocked forgets s if nothing needs it (caller holds g.mu and s.mu).
func (g *gen) gcLocked(s *fileState) {
	if s.refs > 0 || (s.dirty && !s.gone) {
		return
	}
	if s.fd >= 0 {
		_ = unix.Close(s.fd)
		s.fd = -1
	}
	if !s.gone && g.files[s.ino] == s {
		delete(g.files, s.ino)
	}
}

// forget is called when backing inode ino lost its last name: its pending
// data can never be seen again by a new open.
func (g *gen) forget(ino uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.files[ino]
	if !ok {
		return
	}
	delete(g.files, ino)
	s.mu.Lock()
	s.gone = true
	g.gcLocked(s)
	s.mu.Unlock()
}

// patch sets the logical size of a file with pending data.
func (g *gen) patch(a *fuse.Attr) {
	if a.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	g.mu.Lock()
	s := g.files[a.Ino]
	g.mu.Unlock()
	if s == nil {
		return
	}
	if size, dirty := s.logicalSize(); dirty {
		a.Size = uint64(size)
		a.Blocks = (a.Size + 511) / 512
	}
}

// dropAll discards every pending write of the generation.
func (g *gen) dropAll() (bytes int64, files int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.files {
		s.mu.Lock()
		if w, ok := s.drop(); ok {
			bytes += w
			files++
		}
		g.gcLocked(s)
		s.mu.Unlock()
	}
	return bytes, files
}

// closeAll releases every backing descriptor of a dead generation.
func (g *gen) closeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for ino, s := range g.files {
		s.mu.Lock()
		if s.fd >= 0 {
			_ = unix.Close(s.fd)
			s.fd = -1
		}
		s.mu.Unlock()
		delete(g.files, ino)
	}
}

// syncAll flushes every pending write, like sync(2).
func (g *gen) syncAll() error {
	g.mu.Lock()
	var ss []*fileState
	for _, s := range g.files {
		ss = append(ss, s)
	}
	g.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		n, err := s.flush()
		s.mu.Unlock()
		g.synced.Add(n)
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) pending() (bytes int64, files int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.files {
		s.mu.Lock()
		if s.dirty {
			bytes += s.written
			files++
		}
		s.mu.Unlock()
	}
	return bytes, files
}

// node is a loopback node whose regular files go through the overlay.
type node struct {
	*fs.LoopbackNode
	g *gen
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeLookuper    = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeUnlinker    = (*node)(nil)
	_ fs.NodeRenamer     = (*node)(nil)
	_ fs.NodeTmpfiler    = (*node)(nil)
)

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if lb, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: lb, g: n.g}
	}
	return ops
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(nil))
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.g.patch(&out.Attr)
	}
	return ch, errno
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Getattr(ctx, out)
	}
	if errno := n.LoopbackNode.Getattr(ctx, nil, out); errno != 0 {
		return errno
	}
	n.g.patch(&out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.g.dead.Load() {
		return syscall.EIO
	}
	if size, ok := in.GetSize(); ok {
		h, _ := f.(*handle)
		if h == nil {
			var errno syscall.Errno
			if h, errno = n.openHandle(ctx, syscall.O_RDWR); errno != 0 {
				return errno
			}
			defer h.Release(ctx)
		}
		h.s.mu.Lock()
		err := h.s.truncate(int64(size))
		h.s.mu.Unlock()
		if err != nil {
			return fs.ToErrno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
		if f == nil {
			f = h
		}
	}
	// the rest (mode, owner, times) is metadata: straight to the backing file
	if errno := n.LoopbackNode.Setattr(ctx, f, in, out); errno != 0 {
		return errno
	}
	n.g.patch(&out.Attr)
	return 0
}

// backingFlags adapts open flags for the backing file: write-only becomes
// read-write (partial pages are read back), and O_TRUNC, O_SYNC, O_DSYNC,
// O_DIRECT and O_APPEND are handled here, not by the backing file.
func backingFlags(flags uint32) (bflags uint32, writable, sync, trunc bool) {
	f := int(flags)
	acc := f & syscall.O_ACCMODE
	writable = acc != syscall.O_RDONLY
	sync = f&(syscall.O_SYNC|syscall.O_DSYNC) != 0
	trunc = f&syscall.O_TRUNC != 0 && writable
	f &^= syscall.O_TRUNC | syscall.O_SYNC | syscall.O_DSYNC | syscall.O_DIRECT | syscall.O_APPEND | syscall.O_ACCMODE
	if writable {
		f |= syscall.O_RDWR
	}
	return uint32(f) &^ fuse.FMODE_EXEC, writable, sync, trunc
}

func (n *node) openHandle(ctx context.Context, flags uint32) (*handle, syscall.Errno) {
	bflags, writable, sync, trunc := backingFlags(flags)
	fh, _, errno := n.LoopbackNode.Open(ctx, bflags)
	if errno != 0 {
		return nil, errno
	}
	return n.g.wrap(ctx, fh, writable, sync, trunc)
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.g.dead.Load() {
		return nil, 0, syscall.EIO
	}
	h, errno := n.openHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.g.dead.Load() {
		return nil, nil, 0, syscall.EIO
	}
	bflags, writable, sync, trunc := backingFlags(flags)
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, bflags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, errno := n.g.wrap(ctx, fh, writable, sync, trunc)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.g.patch(&out.Attr)
	return ch, h, 0, 0
}

func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// lastLink reports the backing inode at p if removing p removes its last
// name.
func lastLink(p string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return 0, false
	}
	return st.Ino, st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink <= 1
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	ino, last := lastLink(filepath.Join(n.backingPath(), name))
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && last {
		n.g.forget(ino)
	}
	return errno
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var ino uint64
	var last bool
	if np, ok := newParent.(*node); ok && flags&unix.RENAME_EXCHANGE == 0 {
		ino, last = lastLink(filepath.Join(np.backingPath(), newName))
		if src, _ := lastLink(filepath.Join(n.backingPath(), name)); src == ino {
			last = false
		}
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && last {
		n.g.forget(ino)
	}
	return errno
}

// wrap turns a loopback file handle into an overlay handle that owns a
// duplicate of its descriptor.
func (g *gen) wrap(ctx context.Context, fh fs.FileHandle, writable, sync, trunc bool) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	defer lf.Release(ctx)
	ofd, ok := lf.PassthroughFd()
	if !ok {
		return nil, syscall.EBADF
	}
	fd, err := unix.Dup(ofd)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	unix.CloseOnExec(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, fs.ToErrno(err)
	}
	s, err := g.acquire(st.Ino, fd, writable)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fs.ToErrno(err)
	}
	h := &handle{g: g, s: s, fd: fd, sync: sync}
	if trunc {
		s.mu.Lock()
		err := s.truncate(0)
		s.mu.Unlock()
		if err != nil {
			h.Release(ctx)
			return nil, fs.ToErrno(err)
		}
	}
	return h, 0
}

// handle is an open file: its own backing descriptor plus the shared
// overlay state of the file.
type handle struct {
	g    *gen
	s    *fileState
	fd   int
	sync bool

	once sync.Once
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.g.dead.Load() {
		return nil, syscall.EIO
	}
	n, err := h.s.read(h.fd, buf, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.g.dead.Load() {
		return 0, syscall.EIO
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if err := h.s.write(data, off); err != nil {
		return 0, fs.ToErrno(err)
	}
	if h.sync {
		n, err := h.s.flush()
		h.g.synced.Add(n)
		h.g.syncs.Add(1)
		if err != nil {
			return 0, fs.ToErrno(err)
		}
	}
	return uint32(len(data)), 0
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.g.dead.Load() {
		return syscall.EIO
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	n, err := h.s.flush()
	h.g.synced.Add(n)
	h.g.syncs.Add(1)
	return fs.ToErrno(err)
}

// Flush (close of one descriptor) syncs nothing, as on a real file system.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.once.Do(func() {
		_ = unix.Close(h.fd)
		h.g.release(h.s)
	})
	return 0
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	if size, dirty := h.s.logicalSize(); dirty {
		out.Size = uint64(size)
		out.Blocks = (out.Size + 511) / 512
	}
	return 0
}

// Allocate is not modelled: fallocate would change the backing file at once.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}
