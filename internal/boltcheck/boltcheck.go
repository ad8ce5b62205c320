package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrCorrupt is wrapped by every error Check returns for a damaged file.
var ErrCorrupt = errors.New("bbolt file is corrupt")

// The on-disk layout of bbolt (go.etcd.io/bbolt/internal/common), in the
// byte order of the machine that wrote it; bbolt supports little-endian
// hosts only in practice, as does this check.
const (
	magic           = 0xED0CDAED
	version         = 2
	pageHeaderSize  = 16
	elemSize        = 16 // branch and leaf elements alike
	bucketHeader    = 16 // root page id, sequence
	metaChecksumEnd = pageHeaderSize + 56

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10

	leafFlagBucket = 0x01
	noFreelist     = ^uint64(0)
	maxDepth       = 64 // far beyond any real tree; guards a cycle of branch pages
)

var le = binary.LittleEndian

type meta struct {
	pageSize        uint32
	root            uint64
	freelist, hwm   uint64
	txid            uint64
	valid           bool
	validationError error
}

// Check verifies the file at path. A missing or empty file is not an error
// (bbolt creates a new database there); what that means to the caller is
// the caller's business.
func Check(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("check %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil
	}
	c := &checker{f: f, size: fi.Size(), seen: map[uint64]bool{}}
	if err := c.run(); err != nil {
		return fmt.Errorf("%s: %w: %w", path, ErrCorrupt, err)
	}
	return nil
}

type checker struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64
	seen     map[uint64]bool
}

func (c *checker) run() error {
	m, err := c.pickMeta()
	if err != nil {
		return err
	}
	c.pageSize, c.hwm = int64(m.pageSize), m.hwm
	if need := int64(m.hwm) * c.pageSize; m.hwm < 2 || need/c.pageSize != int64(m.hwm) || need > c.size {
		return fmt.Errorf("the file is %d bytes but its meta page needs %d pages of %d bytes (truncated?)", c.size, m.hwm, c.pageSize)
	}
	c.seen[0], c.seen[1] = true, true
	if m.freelist != noFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.bucket(m.root, 0)
}

// pickMeta chooses the meta page bbolt would: the valid one with the
// higher transaction id.
func (c *checker) pickMeta() (meta, error) {
	m0 := c.readMeta(0)
	pageSize := int64(m0.pageSize)
	var m1 meta
	if m0.valid {
		m1 = c.readMeta(pageSize)
	} else {
		// Meta 0 is damaged: look for meta 1 where bbolt would.
		for ps := int64(1024); ps <= 64<<10; ps *= 2 {
			if m1 = c.readMeta(ps); m1.valid && int64(m1.pageSize) == ps {
				break
			}
		}
	}
	switch {
	case m0.valid && m1.valid:
		if m1.txid > m0.txid {
			return m1, nil
		}
		return m0, nil
	case m0.valid:
		return m0, nil
	case m1.valid:
		return m1, nil
	}
	return meta{}, fmt.Errorf("no valid meta page (%v)", m0.validationError)
}

func (c *checker) readMeta(off int64) meta {
	b := make([]byte, metaChecksumEnd+8)
	if _, err := c.f.ReadAt(b, off); err != nil {
		return meta{validationError: fmt.Errorf("read meta page at %d: %w", off, err)}
	}
	if le.Uint16(b[8:]) != flagMeta {
		return meta{validationError: fmt.Errorf("page at %d is not a meta page", off)}
	}
	body := b[pageHeaderSize:]
	h := fnv.New64a()
	_, _ = h.Write(b[pageHeaderSize:metaChecksumEnd])
	m := meta{
		pageSize: le.Uint32(body[8:]),
		root:     le.Uint64(body[16:]),
		freelist: le.Uint64(body[32:]),
		hwm:      le.Uint64(body[40:]),
		txid:     le.Uint64(body[48:]),
	}
	switch {
	case le.Uint32(body[0:]) != magic:
		m.validationError = errors.New("bad magic in meta page")
	case le.Uint32(body[4:]) != version:
		m.validationError = errors.New("unknown version in meta page")
	case h.Sum64() != le.Uint64(b[metaChecksumEnd:]):
		m.validationError = errors.New("meta page checksum mismatch")
	case m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0:
		m.validationError = fmt.Errorf("meta page size %d", m.pageSize)
	default:
		m.valid = true
	}
	return m
}

// page reads page id with its overflow pages and checks its header.
func (c *checker) page(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, fmt.Errorf("page %d is out of bounds (high water mark %d)", id, c.hwm)
	}
	head := make([]byte, pageHeaderSize)
	if _, err := c.f.ReadAt(head, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	if got := le.Uint64(head); got != id {
		return nil, fmt.Errorf("page %d has the id %d", id, got)
	}
	flags, overflow := le.Uint16(head[8:]), uint64(le.Uint32(head[12:]))
	if flags&want == 0 {
		return nil, fmt.Errorf("page %d has type flags %#x, want %#x", id, flags, want)
	}
	if id+overflow >= c.hwm {
		return nil, fmt.Errorf("page %d with %d overflow pages runs past the high water mark %d", id, overflow, c.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if c.seen[i] {
			return nil, fmt.Errorf("page %d is referenced twice", i)
		}
		c.seen[i] = true
	}
	b := make([]byte, int64(overflow+1)*c.pageSize)
	if _, err := c.f.ReadAt(b, int64(id)*c.pageSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	} else if err != nil {
		return nil, fmt.Errorf("page %d runs past the end of the file", id)
	}
	return b, nil
}

func (c *checker) checkFreelist(id uint64) error {
	b, err := c.page(id, flagFreelist)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	count, start := uint64(le.Uint16(b[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF { // the real count is the first element
		if len(b) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d is too short", id)
		}
		count, start = le.Uint64(b[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > uint64(len(b)) || start+count*8 > uint64(len(b)) {
		return fmt.Errorf("freelist page %d claims %d ids, more than it holds", id, count)
	}
	for i := range count {
		if p := le.Uint64(b[start+i*8:]); p < 2 || p >= c.hwm {
			return fmt.Errorf("freelist page %d lists page %d, out of bounds", id, p)
		}
	}
	return nil
}

// bucket checks the tree of a bucket whose root is page root.
func (c *checker) bucket(root uint64, depth int) error {
	if depth > maxDepth {
		return errors.New("buckets nested too deep")
	}
	_, err := c.tree(root, nil, nil, 0, depth)
	return err
}

// tree checks page id and its subtree: keys sorted, within [lo, hi), and
// nested buckets recursively. It returns the subtree's last key.
func (c *checker) tree(id uint64, lo, hi []byte, level, depth int) ([]byte, error) {
	if level > maxDepth {
		return nil, fmt.Errorf("page %d: tree deeper than %d", id, maxDepth)
	}
	b, err := c.page(id, flagBranch|flagLeaf)
	if err != nil {
		return nil, err
	}
	if le.Uint16(b[8:])&flagBranch != 0 {
		n := int(le.Uint16(b[10:]))
		if n == 0 {
			return nil, fmt.Errorf("branch page %d has no elements", id)
		}
		keys := make([][]byte, n)
		kids := make([]uint64, n)
		for i := range n {
			e, err := elem(b, i)
			if err != nil {
				return nil, fmt.Errorf("branch page %d: %w", id, err)
			}
			if keys[i], err = slice(b, e+int(le.Uint32(b[e:])), int(le.Uint32(b[e+4:]))); err != nil {
				return nil, fmt.Errorf("branch page %d element %d: %w", id, i, err)
			}
			kids[i] = le.Uint64(b[e+8:])
		}
		last, runMin := []byte(nil), lo
		for i := range n {
			if err := order(keys, i, runMin, hi); err != nil {
				return nil, fmt.Errorf("branch page %d: %w", id, err)
			}
			next := hi
			if i < n-1 {
				next = keys[i+1]
			}
			if last, err = c.tree(kids[i], keys[i], next, level+1, depth); err != nil {
				return nil, err
			}
			runMin = last
		}
		return last, nil
	}
	return c.leaf(b, id, lo, hi, depth)
}

// leaf checks a leaf page (also an inline bucket's page, id 0).
func (c *checker) leaf(b []byte, id uint64, lo, hi []byte, depth int) ([]byte, error) {
	n := int(le.Uint16(b[10:]))
	keys := make([][]byte, n)
	for i := range n {
		e, err := elem(b, i)
		if err != nil {
			return nil, fmt.Errorf("leaf page %d: %w", id, err)
		}
		flags, pos, ks, vs := le.Uint32(b[e:]), int(le.Uint32(b[e+4:])), int(le.Uint32(b[e+8:])), int(le.Uint32(b[e+12:]))
		kv, err := slice(b, e+pos, ks+vs)
		if err != nil || ks < 0 || vs < 0 {
			return nil, fmt.Errorf("leaf page %d element %d: key and value out of the page", id, i)
		}
		keys[i] = kv[:ks]
		if err := order(keys, i, lo, hi); err != nil {
			return nil, fmt.Errorf("leaf page %d: %w", id, err)
		}
		if flags&leafFlagBucket == 0 {
			continue
		}
		v := kv[ks:]
		if len(v) < bucketHeader {
			return nil, fmt.Errorf("leaf page %d element %d: bucket header too short", id, i)
		}
		if root := le.Uint64(v); root != 0 {
			if err := c.bucket(root, depth+1); err != nil {
				return nil, err
			}
			continue
		}
		inline := v[bucketHeader:]
		if len(inline) < pageHeaderSize || le.Uint16(inline[8:])&flagLeaf == 0 {
			return nil, fmt.Errorf("leaf page %d element %d: inline bucket is not a leaf page", id, i)
		}
		if _, err := c.leaf(inline, 0, nil, nil, depth+1); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, nil
	}
	return keys[n-1], nil
}

// elem returns the offset of element i of page b.
func elem(b []byte, i int) (int, error) {
	off := pageHeaderSize + i*elemSize
	if off+elemSize > len(b) {
		return 0, fmt.Errorf("element %d lies outside the page", i)
	}
	return off, nil
}

func slice(b []byte, off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > len(b) || n > len(b)-off {
		return nil, errors.New("out of the page")
	}
	return b[off : off+n], nil
}

// order applies bbolt's key-order rules to keys[i].
func order(keys [][]byte, i int, lo, hi []byte) error {
	k := keys[i]
	if i == 0 && lo != nil && bytes.Compare(lo, k) > 0 {
		return fmt.Errorf("first key %x is below its parent's key %x", k, lo)
	}
	if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
		return fmt.Errorf("key %d (%x) is not above the previous key", i, k)
	}
	if hi != nil && bytes.Compare(k, hi) >= 0 {
		return fmt.Errorf("key %d (%x) is not below the next key of its parent", i, k)
	}
	return nil
}
