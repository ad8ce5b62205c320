package lazyfs

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// fileState is the not yet synced view of one backing file: a page
// overlay over the backing content. All fields are guarded by mu, except
// that the map entry holding it is guarded by gen.mu.
type fileState struct {
	ino uint64

	mu   sync.Mutex
	fd   int  // read-write backing fd owned by the state (-1: none yet)
	refs int  // open handles
	gone bool // unlinked (or replaced by rename): no longer in gen.files

	dirty bool
	// While dirty: size is the logical size; bytes at or past floor that
	// are not in pages read as zero (the backing bytes there were cut by a
	// truncate, or are past the backing file's size when it went dirty).
	size, floor int64
	pages       map[int64][]byte
	written     int64 // bytes written (plus truncates) since the last sync, for Stats
}

func newFileState(ino uint64) *fileState { return &fileState{ino: ino, fd: -1} }

var errNoFD = errors.New("lazyfs: no writable backing descriptor")

// begin makes the state dirty (caller holds mu).
func (s *fileState) begin() error {
	if s.dirty {
		return nil
	}
	if s.fd < 0 {
		return errNoFD
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return fmt.Errorf("lazyfs: fstat backing: %w", err)
	}
	s.dirty, s.size, s.floor = true, st.Size, st.Size
	s.pages = map[int64][]byte{}
	s.written = 0
	return nil
}

// preadFull reads len(b) bytes at off, zero-filling past EOF.
func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("lazyfs: pread backing: %w", err)
		}
		if n == 0 {
			clear(b)
			return nil
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("lazyfs: pwrite backing: %w", err)
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// readBase fills b with the content the file had at off before its pending
// pages: backing bytes below floor, zeros from floor on (caller holds mu).
func (s *fileState) readBase(fd int, b []byte, off int64) error {
	n := int64(len(b))
	if s.dirty {
		n = max(0, min(n, s.floor-off))
	}
	if err := preadFull(fd, b[:n], off); err != nil {
		return err
	}
	clear(b[n:])
	return nil
}

// read reads at off through the overlay; fd is a readable backing fd used
// while the state is clean. It returns the number of bytes read (short at
// EOF).
func (s *fileState) read(fd int, b []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		n := 0
		for n < len(b) {
			m, err := unix.Pread(fd, b[n:], off+int64(n))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("lazyfs: pread backing: %w", err)
			}
			if m == 0 {
				break
			}
			n += m
		}
		return n, nil
	}
	if s.fd >= 0 {
		fd = s.fd
	}
	if off >= s.size {
		return 0, nil
	}
	end := min(off+int64(len(b)), s.size)
	for pos := off; pos < end; {
		p := pos / pageSize
		if pg, ok := s.pages[p]; ok {
			hi := min(end, (p+1)*pageSize)
			copy(b[pos-off:hi-off], pg[pos-p*pageSize:])
			pos = hi
			continue
		}
		// a run of pages not in the overlay: one backing read
		hi := min(end, (p+1)*pageSize)
		for hi < end {
			if _, ok := s.pages[hi/pageSize]; ok {
				break
			}
			hi = min(end, hi+pageSize)
		}
		if err := s.readBase(fd, b[pos-off:hi-off], pos); err != nil {
			return 0, err
		}
		pos = hi
	}
	return int(end - off), nil
}

// write records data at off (caller holds mu).
func (s *fileState) write(data []byte, off int64) error {
	if err := s.begin(); err != nil {
		return err
	}
	end := off + int64(len(data))
	for p := off / pageSize; p*pageSize < end; p++ {
		start := p * pageSize
		lo, hi := max(off, start), min(end, start+pageSize)
		pg, ok := s.pages[p]
		if !ok {
			pg = make([]byte, pageSize)
			if hi-lo < pageSize {
				if err := s.readBase(s.fd, pg, start); err != nil {
					return err
				}
				// bytes past the logical size read as zero
				if s.size < start+pageSize {
					clear(pg[max(0, s.size-start):])
				}
			}
			s.pages[p] = pg
		}
		copy(pg[lo-start:hi-start], data[lo-off:hi-off])
	}
	s.size = max(s.size, end)
	s.written += int64(len(data))
	return nil
}

// truncate sets the logical size (caller holds mu).
func (s *fileState) truncate(size int64) error {
	if size < 0 {
		return unix.EINVAL
	}
	if err := s.begin(); err != nil {
		return err
	}
	if size < s.size {
		for p := range s.pages {
			if p*pageSize >= size {
				delete(s.pages, p)
			}
		}
		if pg, ok := s.pages[size/pageSize]; ok {
			clear(pg[size%pageSize:])
		}
		s.floor = min(s.floor, size)
	}
	s.size = size
	s.written++
	return nil
}

// flush writes the pending data to the backing file and fsyncs it
// (caller holds mu). It returns the bytes written to the backing file.
func (s *fileState) flush() (int64, error) {
	if !s.dirty {
		if s.fd >= 0 {
			if err := unix.Fsync(s.fd); err != nil {
				return 0, fmt.Errorf("lazyfs: fsync backing: %w", err)
			}
		}
		return 0, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return 0, fmt.Errorf("lazyfs: fstat backing: %w", err)
	}
	if s.floor < st.Size {
		if err := unix.Ftruncate(s.fd, s.floor); err != nil {
			return 0, fmt.Errorf("lazyfs: ftruncate backing: %w", err)
		}
	}
	keys := make([]int64, 0, len(s.pages))
	for p := range s.pages {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	var n int64
	var buf []byte
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j] == keys[j-1]+1 {
			j++
		}
		start := keys[i] * pageSize
		buf = buf[:0]
		for _, p := range keys[i:j] {
			buf = append(buf, s.pages[p]...)
		}
		if lim := s.size - start; int64(len(buf)) > lim {
			buf = buf[:max(0, lim)]
		}
		if err := pwriteFull(s.fd, buf, start); err != nil {
			return n, err
		}
		n += int64(len(buf))
		i = j
	}
	if err := unix.Ftruncate(s.fd, s.size); err != nil {
		return n, fmt.Errorf("lazyfs: ftruncate backing: %w", err)
	}
	if err := unix.Fsync(s.fd); err != nil {
		return n, fmt.Errorf("lazyfs: fsync backing: %w", err)
	}
	s.dirty, s.pages, s.written = false, nil, 0
	return n, nil
}

// drop discards the pending data (caller holds mu) and returns how many
// bytes were written since the last sync.
func (s *fileState) drop() (int64, bool) {
	if !s.dirty {
		return 0, false
	}
	w := s.written
	s.dirty, s.pages, s.written = false, nil, 0
	return w, true
}

// logicalSize returns the size to report and whether it differs from the
// backing file's.
func (s *fileState) logicalSize() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, s.dirty
}
