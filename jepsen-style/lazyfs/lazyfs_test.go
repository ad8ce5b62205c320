package lazyfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// mountT mounts a fresh lazyfs or skips the test where that is impossible.
func mountT(t *testing.T) *FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lazyfs: mounting FUSE with mount(2) needs root; run the tests as root (CI does)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("lazyfs: /dev/fuse is missing (%v); FUSE tests need it", err)
	}
	backing, mnt := t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f
}

func writeAt(t *testing.T, path string, flags int, data string, off int64, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func fsync(t *testing.T, path string, data bool) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if data {
		err = unix.Fdatasync(int(fh.Fd()))
	} else {
		err = fh.Sync()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestPowerLoss: what a file holds before and after a power cycle.
func TestPowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name   string
		do     func(t *testing.T, dir string)
		before string // content seen before the power loss (read-your-writes)
		after  string // content after it
		gone   bool   // the file does not exist after it
	}{
		{name: "write+fsync survives", before: "hello", after: "hello",
			do: func(t *testing.T, d string) { writeAt(t, d+"/f", 0, "hello", 0, true) }},
		{name: "write+fdatasync survives", before: "hello", after: "hello",
			do: func(t *testing.T, d string) { writeAt(t, d+"/f", 0, "hello", 0, false); fsync(t, d+"/f", true) }},
		{name: "fsync through another descriptor survives", before: "abc", after: "abc",
			do: func(t *testing.T, d string) { writeAt(t, d+"/f", 0, "abc", 0, false); fsync(t, d+"/f", false) }},
		{name: "created, written, never synced: empty", before: "lost", after: "",
			do: func(t *testing.T, d string) { writeAt(t, d+"/f", 0, "lost", 0, false) }},
		{name: "overwrite after sync reverts", before: "heLLo world", after: "hello",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "hello", 0, true)
				writeAt(t, d+"/f", 0, "LL", 2, false)
				writeAt(t, d+"/f", 0, " world", 5, false)
			}},
		{name: "O_DSYNC writes survive", before: "durable", after: "durable",
			do: func(t *testing.T, d string) { writeAt(t, d+"/f", os.O_SYNC, "durable", 0, false) }},
		{name: "truncate down unsynced reverts", before: "hel", after: "hello",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "hello", 0, true)
				if err := os.Truncate(d+"/f", 3); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "truncate down then extend reads zeros", before: "he\x00\x00\x00\x00", after: "he\x00\x00\x00\x00",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "hello", 0, true)
				if err := os.Truncate(d+"/f", 2); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(d+"/f", 6); err != nil {
					t.Fatal(err)
				}
				fsync(t, d+"/f", false)
			}},
		{name: "O_TRUNC unsynced reverts", before: "x", after: "hello",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "hello", 0, true)
				writeAt(t, d+"/f", os.O_TRUNC, "x", 0, false)
			}},
		{name: "rename passes through, unsynced data does not", before: "data", after: "",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/tmp", 0, "data", 0, false)
				if err := os.Rename(d+"/tmp", d+"/f"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "rename over a synced file", before: "new", after: "new",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "old", 0, true)
				writeAt(t, d+"/tmp", 0, "new", 0, true)
				if err := os.Rename(d+"/tmp", d+"/f"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "unlink passes through", gone: true,
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "x", 0, true)
				if err := os.Remove(d + "/f"); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "mkdir passes through", before: "", after: "",
			do: func(t *testing.T, d string) {
				if err := os.Mkdir(d+"/sub", 0o755); err != nil {
					t.Fatal(err)
				}
				writeAt(t, d+"/sub/g", 0, "lost", 0, false)
				writeAt(t, d+"/f", 0, "", 0, false)
			}},
		{name: "sparse write past EOF", before: "ab\x00\x00cd", after: "ab",
			do: func(t *testing.T, d string) {
				writeAt(t, d+"/f", 0, "ab", 0, true)
				writeAt(t, d+"/f", 0, "cd", 4, false)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mountT(t)
			dir := f.Mountpoint()
			tc.do(t, dir)
			got, ok := readFile(t, dir+"/f")
			if tc.gone != !ok {
				t.Fatalf("before: file exists=%v, want %v", ok, !tc.gone)
			}
			if got != tc.before {
				t.Fatalf("before power loss: read %q, want %q (read-your-writes)", got, tc.before)
			}
			if st, err := os.Stat(dir + "/f"); err == nil && st.Size() != int64(len(tc.before)) {
				t.Fatalf("before power loss: size %d, want %d", st.Size(), len(tc.before))
			}
			d, err := f.PowerCycle()
			if err != nil {
				t.Fatal(err)
			}
			got, ok = readFile(t, dir+"/f")
			if tc.gone != !ok {
				t.Fatalf("after: file exists=%v, want %v", ok, !tc.gone)
			}
			if got != tc.after {
				t.Fatalf("after power loss: read %q, want %q (dropped %+v)", got, tc.after, d)
			}
			if tc.before != tc.after && d.Bytes == 0 {
				t.Errorf("power loss changed the file but reported nothing dropped")
			}
			if b, _ := os.ReadFile(filepath.Join(f.Backing(), "f")); string(b) != tc.after && !tc.gone {
				t.Errorf("backing file holds %q, want %q", b, tc.after)
			}
		})
	}
}

// TestDropUnsyncedLive drops on a live mount (files closed).
func TestDropUnsyncedLive(t *testing.T) {
	f := mountT(t)
	p := filepath.Join(f.Mountpoint(), "f")
	writeAt(t, p, 0, "synced", 0, true)
	writeAt(t, p, 0, "SYNCED and more", 0, false)
	d := f.DropUnsynced()
	if got, _ := readFile(t, p); got != "synced" {
		t.Fatalf("after DropUnsynced: %q (dropped %+v)", got, d)
	}
	if d.Files != 1 || d.Bytes != int64(len("SYNCED and more")) {
		t.Fatalf("dropped %+v", d)
	}
	if st := f.Stats(); st.DroppedBytes != d.Bytes || st.Drops != 1 || st.PendingBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The file system is served by the test process, so anything that faults
// on a mapping of a file on the mount (bbolt, the mmap test) runs in a
// child process: a thread of the serving process that blocks in such a
// page fault would hold up the Go runtime's stop-the-world, and with it
// the server the fault waits for.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LAZYFS_CHILD"); mode != "" {
		if err := child(mode, os.Getenv("LAZYFS_DIR")); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild runs this test binary as a child in mode on dir. With kill, it
// waits for the child's first output line and SIGKILLs it (a crash).
func runChild(t *testing.T, mode, dir string, kill bool, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LAZYFS_CHILD="+mode, "LAZYFS_DIR="+dir), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // the child in a kill mode waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, rerr := bufio.NewReader(out).ReadString('\n')
	if kill {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	line = strings.TrimSpace(line)
	if rerr != nil || strings.HasPrefix(line, "error:") || (!kill && werr != nil) {
		t.Fatalf("child %s: %q (read: %v, exit: %v)", mode, line, rerr, werr)
	}
	return line
}

func child(mode, dir string) error {
	switch mode {
	case "mmap":
		return childMmap(dir)
	case "bolt-commit":
		n, _ := strconv.Atoi(os.Getenv("LAZYFS_N"))
		if err := boltCommit(filepath.Join(dir, "raft.db"), n, os.Getenv("LAZYFS_NOSYNC") == "1"); err != nil {
			return err
		}
		// unsynced junk in another file
		if err := os.WriteFile(filepath.Join(dir, "junk"), bytes.Repeat([]byte("j"), 10000), 0o644); err != nil {
			return err
		}
		fmt.Println("committed")
		_, _ = io.Copy(io.Discard, os.Stdin) // until SIGKILL
		return nil
	case "bolt-check":
		n, _ := strconv.Atoi(os.Getenv("LAZYFS_N"))
		survived, err := boltCheck(filepath.Join(dir, "raft.db"), n)
		if err != nil {
			return err
		}
		fmt.Println("survived", survived)
		return nil
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// childMmap: a read-only shared mapping (as bbolt uses) and a second
// descriptor see writes that were never synced.
func childMmap(dir string) error {
	p := filepath.Join(dir, "m")
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*pageSize/16)
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.WriteAt(data[:pageSize], 0); err != nil {
		return err
	}
	if err := fh.Sync(); err != nil {
		return err
	}
	if _, err := fh.WriteAt(data[pageSize:], pageSize); err != nil {
		return err
	}
	m, err := unix.Mmap(int(fh.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, data) {
		return fmt.Errorf("mmap does not see unsynced writes (diff at %d)", firstDiff(m, data))
	}
	// a write after the mapping exists, in the middle of a page
	if _, err := fh.WriteAt([]byte("XYZ"), pageSize+100); err != nil {
		return err
	}
	if string(m[pageSize+100:pageSize+103]) != "XYZ" {
		return fmt.Errorf("mmap does not see a later pwrite: %q", m[pageSize+100:pageSize+103])
	}
	other, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if len(other) != len(data) || string(other[pageSize+100:pageSize+103]) != "XYZ" {
		return fmt.Errorf("another descriptor reads %d bytes", len(other))
	}
	fmt.Println("ok")
	return nil
}

func TestReadYourWritesMmap(t *testing.T) {
	f := mountT(t)
	runChild(t, "mmap", f.Mountpoint(), false)
	if st := f.Stats(); st.PendingBytes != 2*pageSize+3 || st.PendingFiles != 1 {
		t.Fatalf("stats: %+v, want 2 pages + 3 bytes pending in one file", st)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Backing(), "m")); len(b) != pageSize {
		t.Fatalf("backing file has %d bytes before fsync, want %d", len(b), pageSize)
	}
	d, err := f.PowerCycle()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, filepath.Join(f.Mountpoint(), "m")); len(got) != pageSize {
		t.Fatalf("after power loss: %d bytes, want the synced %d (dropped %+v)", len(got), pageSize, d)
	}
}

func key(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }
func val(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100+i%900) }

func boltCommit(path string, n int, noSync bool) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	db.NoSync = noSync
	for i := 0; i < n; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("logs"))
			if err != nil {
				return err
			}
			return b.Put(key(i), val(i))
		})
		if err != nil {
			return fmt.Errorf("tx %d: %w", i, err)
		}
	}
	return nil // not closed: the process is killed
}

func boltCheck(path string, n int) (survived int, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("reopen after power loss: %w", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("tx.Check: %w", err)
		}
		b := tx.Bucket([]byte("logs"))
		if b == nil {
			return nil
		}
		for i := 0; i < n; i++ {
			v := b.Get(key(i))
			if v == nil {
				continue
			}
			if !bytes.Equal(v, val(i)) {
				return fmt.Errorf("key %d has a wrong value", i)
			}
			survived++
		}
		return nil
	})
	return survived, err
}

// boltRun commits n transactions on a bbolt database on the mount in a
// child, writes unsynced junk next to it, SIGKILLs the child, power-cycles,
// reopens the database in another child and returns how many keys
// survived.
func boltRun(t *testing.T, noSync bool, n int) (survived int, d Dropped) {
	t.Helper()
	f := mountT(t)
	ns := "0"
	if noSync {
		ns = "1"
	}
	env := []string{"LAZYFS_N=" + strconv.Itoa(n), "LAZYFS_NOSYNC=" + ns}
	if got := runChild(t, "bolt-commit", f.Mountpoint(), true, env...); got != "committed" {
		t.Fatalf("child: %q", got)
	}
	d, err := f.PowerCycle()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(t, filepath.Join(f.Mountpoint(), "junk")); got != "" {
		t.Fatalf("unsynced junk survived: %d bytes", len(got))
	}
	line := runChild(t, "bolt-check", f.Mountpoint(), false, env...)
	if _, err := fmt.Sscanf(line, "survived %d", &survived); err != nil {
		t.Fatalf("child: %q", line)
	}
	return survived, d
}

// TestBoltCommitsSurvive: bbolt fsyncs each commit, so every committed
// transaction survives the power loss and the file passes tx.Check.
func TestBoltCommitsSurvive(t *testing.T) {
	const n = 300
	got, d := boltRun(t, false, n)
	if got != n {
		t.Fatalf("%d of %d committed transactions survived the power loss", got, n)
	}
	if d.Bytes < 10000 {
		t.Fatalf("dropped %+v, want at least the junk", d)
	}
}

// TestBoltNoSyncLoses proves the file system can lose data: with NoSync
// bbolt does not fsync its commits (only when it grows the file), and the
// last ones are gone after the power loss while the database stays
// consistent: it reverts to its last synced state.
func TestBoltNoSyncLoses(t *testing.T) {
	const n = 100
	got, d := boltRun(t, true, n)
	if got == n {
		t.Fatalf("all %d NoSync commits survived: lazyfs lost nothing", n)
	}
	t.Logf("NoSync: %d of %d commits survived; dropped %d bytes in %d files", got, n, d.Bytes, d.Files)
}
