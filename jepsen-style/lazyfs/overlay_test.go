package lazyfs

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// model is what the overlay must behave like: the logical content and the
// content at the last sync.
type model struct{ cur, synced []byte }

func (m *model) write(b []byte, off int) {
	if end := off + len(b); end > len(m.cur) {
		m.cur = append(m.cur, make([]byte, end-len(m.cur))...)
	}
	copy(m.cur[off:], b)
}

func (m *model) truncate(n int) {
	if n <= len(m.cur) {
		m.cur = m.cur[:n:n]
		return
	}
	m.cur = append(m.cur, make([]byte, n-len(m.cur))...)
}

// TestOverlayModel drives the page overlay (no FUSE, no root) with random
// writes, truncates, syncs and drops and compares every read and the
// backing file with the model.
func TestOverlayModel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize int
		seed    int64
	}{
		{"small-unaligned", 3 * pageSize, 1},
		{"page-crossing", 9 * pageSize, 2},
		{"large", 64 * pageSize, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(tc.seed))
			path := filepath.Join(t.TempDir(), "f")
			initial := make([]byte, rng.Intn(tc.maxSize))
			rng.Read(initial)
			if err := os.WriteFile(path, initial, 0o644); err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(path, unix.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			s := newFileState(1)
			s.fd = fd
			t.Cleanup(func() { unix.Close(fd) })
			m := &model{cur: bytes.Clone(initial), synced: bytes.Clone(initial)}
			check := func(step int, op string) {
				t.Helper()
				got := make([]byte, tc.maxSize+pageSize)
				n, err := s.read(fd, got, 0)
				if err != nil {
					t.Fatalf("step %d (%s): read: %v", step, op, err)
				}
				if !bytes.Equal(got[:n], m.cur) {
					t.Fatalf("step %d (%s): read %d bytes, want %d; first diff at %d", step, op, n, len(m.cur), firstDiff(got[:n], m.cur))
				}
				// a random window
				off := rng.Intn(tc.maxSize + 1)
				w := make([]byte, rng.Intn(3*pageSize))
				n, err = s.read(fd, w, int64(off))
				if err != nil {
					t.Fatal(err)
				}
				want := []byte{}
				if off < len(m.cur) {
					want = m.cur[off:min(len(m.cur), off+len(w))]
				}
				if !bytes.Equal(w[:n], want) {
					t.Fatalf("step %d (%s): window read at %d differs", step, op, off)
				}
				if size, dirty := s.logicalSize(); dirty && size != int64(len(m.cur)) {
					t.Fatalf("step %d (%s): logical size %d, want %d", step, op, size, len(m.cur))
				}
				backing, _ := os.ReadFile(path)
				if !bytes.Equal(backing, m.synced) {
					t.Fatalf("step %d (%s): backing file has %d bytes, want the %d synced ones (diff at %d)", step, op, len(backing), len(m.synced), firstDiff(backing, m.synced))
				}
			}
			for step := 0; step < 400; step++ {
				var op string
				s.mu.Lock()
				switch r := rng.Intn(100); {
				case r < 55:
					off := rng.Intn(tc.maxSize)
					b := make([]byte, 1+rng.Intn(min(tc.maxSize-off, 2*pageSize+7)))
					rng.Read(b)
					op = "write"
					if err := s.write(b, int64(off)); err != nil {
						t.Fatal(err)
					}
					m.write(b, off)
				case r < 70:
					n := rng.Intn(tc.maxSize)
					op = "truncate"
					if err := s.truncate(int64(n)); err != nil {
						t.Fatal(err)
					}
					m.truncate(n)
				case r < 85:
					op = "sync"
					if _, err := s.flush(); err != nil {
						t.Fatal(err)
					}
					m.synced = bytes.Clone(m.cur)
				default:
					op = "drop"
					s.drop()
					m.cur = bytes.Clone(m.synced)
				}
				s.mu.Unlock()
				check(step, op)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestBackingFlags(t *testing.T) {
	for _, tc := range []struct {
		in                    int
		out                   int
		writable, sync, trunc bool
	}{
		{unix.O_RDONLY, unix.O_RDONLY, false, false, false},
		{unix.O_WRONLY, unix.O_RDWR, true, false, false},
		{unix.O_WRONLY | unix.O_TRUNC | unix.O_APPEND, unix.O_RDWR, true, false, true},
		{unix.O_RDWR | unix.O_DSYNC, unix.O_RDWR, true, true, false},
		{unix.O_RDWR | unix.O_SYNC | unix.O_DIRECT | unix.O_CLOEXEC, unix.O_RDWR | unix.O_CLOEXEC, true, true, false},
		{unix.O_RDONLY | unix.O_TRUNC, unix.O_RDONLY, false, false, false},
	} {
		out, w, s, tr := backingFlags(uint32(tc.in))
		if int(out) != tc.out || w != tc.writable || s != tc.sync || tr != tc.trunc {
			t.Errorf("backingFlags(%#o) = %#o %v %v %v, want %#o %v %v %v", tc.in, out, w, s, tr, tc.out, tc.writable, tc.sync, tc.trunc)
		}
	}
}
