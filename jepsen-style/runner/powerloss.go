package runner

// Power loss: node data directories on lazyfs mounts (jepsen-style/lazyfs)
// and the power-loss nemeses, which SIGKILL nodes and drop every write
// they had not fsynced.
//
// Each node's data directory StateDir/data/nK is a lazyfs mount of
// StateDir/lazyfs/nK, served by this (the runner) process in the host
// mount namespace and mounted before `ip netns exec` starts the node, which
// copies the mount table. StateDir/data itself is bind-mounted onto itself
// with shared propagation, so the node namespaces (which ip netns exec
// makes slaves of it) see later unmounts and remounts too, and no
// namespace keeps a copy of a dead mount alive.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/factstr/factstr-go/jepsen-style/lazyfs"
)

var (
	lazyDataRoot = filepath.Join(StateDir, "data")
	lazyBacking  = filepath.Join(StateDir, "lazyfs")
)

// NeedsLazyFS reports whether a nemesis schedule loses un-fsynced writes,
// so the data directories must be on lazyfs (Config.LazyFS).
func NeedsLazyFS(nemeses []string) bool {
	for _, n := range nemeses {
		if n == "power-loss" || n == "power-loss-all" {
			return true
		}
	}
	return false
}

type lazyMounts struct {
	mu     sync.Mutex
	fs     map[int]*lazyfs.FS
	losses map[int]int
}

// mountData puts node i's data directory on a fresh lazyfs mount when the
// run uses lazyfs; a no-op otherwise.
func (c *cluster) mountData(i int, dataDir string) error {
	if !c.cfg.LazyFS {
		return nil
	}
	if c.lfs == nil {
		if err := shareDataRoot(); err != nil {
			return err
		}
		c.lfs = &lazyMounts{fs: map[int]*lazyfs.FS{}, losses: map[int]int{}}
	}
	backing := filepath.Join(lazyBacking, fmt.Sprintf("n%d", i))
	_ = os.RemoveAll(backing)
	if err := os.MkdirAll(backing, 0o755); err != nil {
		return fmt.Errorf("lazyfs backing for n%d: %w", i, err)
	}
	f, err := lazyfs.Mount(backing, dataDir, lazyfs.WithLogger(slog.Default().With("node", fmt.Sprintf("n%d", i))))
	if err != nil {
		return fmt.Errorf("lazyfs for n%d: %w", i, err)
	}
	c.lfs.mu.Lock()
	c.lfs.fs[i] = f
	c.lfs.mu.Unlock()
	c.note("n%d: data dir %s on lazyfs (backing %s)", i, dataDir, backing)
	return nil
}

// shareDataRoot bind-mounts StateDir/data onto itself with shared
// propagation (see the file comment).
func shareDataRoot() error {
	if err := os.MkdirAll(lazyDataRoot, 0o755); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if !isMountPoint(lazyDataRoot) {
		if err := syscall.Mount(lazyDataRoot, lazyDataRoot, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("lazyfs: bind-mount %s: %w", lazyDataRoot, err)
		}
	}
	if err := syscall.Mount("", lazyDataRoot, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("lazyfs: make %s shared: %w", lazyDataRoot, err)
	}
	return nil
}

// powerLoss SIGKILLs one random node (power-loss) or every node
// (power-loss-all), drops their un-fsynced writes and remounts their data
// directories; the nodes restart when the fault heals.
func (c *cluster) powerLoss(kind string, rng *rand.Rand) (*fault, error) {
	if c.lfs == nil {
		return nil, fmt.Errorf("%s needs the data directories on lazyfs (Config.LazyFS; jepsen sets it when the schedule has a power-loss nemesis)", kind)
	}
	victims := c.nodes
	if kind == "power-loss" {
		victims = []*node{c.nodes[rng.Intn(len(c.nodes))]}
	}
	for _, nd := range victims { // all at once, then the disks
		nd.kill()
	}
	var parts, names []string
	var errs []error
	for _, nd := range victims {
		names = append(names, nd.name)
		c.lfs.mu.Lock()
		f := c.lfs.fs[nd.i]
		c.lfs.losses[nd.i]++
		c.lfs.mu.Unlock()
		d, err := f.PowerCycle()
		if err != nil {
			errs = append(errs, fmt.Errorf("power cycle %s: %w", nd.name, err))
		}
		parts = append(parts, fmt.Sprintf("%s lost %d unsynced bytes in %d files", nd.name, d.Bytes, d.Files))
	}
	victimsCopy := append([]*node(nil), victims...)
	return &fault{desc: fmt.Sprintf("power loss %s: %s", strings.Join(names, ","), strings.Join(parts, "; ")), heal: func(context.Context) {
		for _, nd := range victimsCopy {
			if err := nd.start(); err != nil {
				c.note("restart %s after power loss: %v", nd.name, err)
			}
		}
	}}, errors.Join(errs...)
}

// unmountData unmounts the lazyfs mounts (nodes are stopped by then),
// notes what power loss dropped, and removes the backing directories.
func (c *cluster) unmountData() {
	if c.lfs == nil {
		return
	}
	c.lfs.mu.Lock()
	defer c.lfs.mu.Unlock()
	var ids []int
	for i := range c.lfs.fs {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	for _, i := range ids {
		f := c.lfs.fs[i]
		st := f.Stats()
		c.note("lazyfs n%d: %d power losses dropped %d unsynced bytes (%d file versions); %d fsyncs wrote %d bytes",
			i, c.lfs.losses[i], st.DroppedBytes, st.DroppedFiles, st.Syncs, st.SyncedBytes)
		if err := f.Unmount(); err != nil {
			c.note("lazyfs n%d: %v", i, err)
		}
	}
	c.lfs.fs = map[int]*lazyfs.FS{}
	for _, d := range cleanupLazyMounts() {
		c.note("cleanup: %s", d)
	}
}

// cleanupLazyMounts lazily unmounts every mount under StateDir (lazyfs
// mounts and the shared bind of StateDir/data, also those a crashed run
// left) and removes the lazyfs backing directories.
func cleanupLazyMounts() []string {
	var did []string
	mps := mountsUnder(StateDir)
	sort.Slice(mps, func(a, b int) bool { return len(mps[a]) > len(mps[b]) }) // children first
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err == nil {
			did = append(did, "unmounted "+mp)
		} else {
			did = append(did, fmt.Sprintf("unmount %s: %v", mp, err))
		}
	}
	if _, err := os.Stat(lazyBacking); err == nil {
		_ = os.RemoveAll(lazyBacking)
		did = append(did, "removed "+lazyBacking)
	}
	return did
}

func isMountPoint(dir string) bool {
	for _, mp := range mountsUnder(dir) {
		if mp == dir {
			return true
		}
	}
	return false
}

// mountsUnder lists the mount points at or below dir in this mount
// namespace.
func mountsUnder(dir string) []string {
	fh, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// wipeDir removes everything inside dir but not dir itself, which may be a
// mount point (a lazyfs data directory).
func wipeDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
