package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
)

// Index keys.
//
// A posting key is a list prefix followed by the 8-byte big-endian sequence
// number, so one posting list is one contiguous, ordered key range and its
// newest entry is one reverse seek away. Prefixes are prefix-free: an inline
// prefix is 0x01, the uvarint length and the bytes; a long one (which bbolt's
// key size limit and page fill would not like) is 0x02 and the SHA-256 of the
// bytes. A hash collision only widens a candidate set, and every candidate
// is verified with the contract's matcher, so it cannot change a result.
//
// The type index keys on the type. The payload index keys on a (path, value)
// leaf: the path is the object keys from the root, each as 0x01 + uvarint
// length + bytes, closed by 0x00; the value is a tag ('n' number, 's'
// string, 't' true, 'f' false, 'z' null) and, for numbers and strings, the
// bytes. Numbers use contract.CanonicalNumber so 10 and 10.0 share a list,
// and the tag keeps "1" and 1 apart. Array elements are indexed under the
// array's own path, so a predicate array element finds any position.

const (
	prefixInline byte = 0x01
	prefixHashed byte = 0x02
	maxInline         = 192
)

func listPrefix(raw []byte) []byte {
	if len(raw) > maxInline {
		h := sha256.Sum256(raw)
		return append([]byte{prefixHashed}, h[:]...)
	}
	p := make([]byte, 0, 1+binary.MaxVarintLen64+len(raw))
	p = append(p, prefixInline)
	return putUvarintBytes(p, raw)
}

func postingKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

func typePrefix(typ string) []byte { return listPrefix([]byte(typ)) }

// leafPrefixes returns the distinct posting prefixes of every scalar leaf of
// a decoded JSON value (contract.DecodeJSON), sorted. A predicate and every
// payload it matches produce leaves such that the predicate's are a subset
// of the payload's: that is the one property the index relies on. Apply
// indexes payloads with payloadLeaves, which computes the same prefixes from
// the raw bytes; this walk serves the query planner's predicates.
//
// Its memory and work are linear in the value's encoded size whatever the
// nesting: the walk extends and truncates one path buffer, and a leaf whose
// (path, value) bytes are long enough to be hashed continues a SHA-256 state
// saved for its path instead of hashing the path again. Without both, a
// payload 6,000 levels deep with long keys took gigabytes (every level
// copied the path so far) and many leaves under one long path would each
// have hashed all of it.
func leafPrefixes(v any) [][]byte {
	var w leafWalker
	w.walk(v)
	slices.SortFunc(w.out, bytes.Compare)
	return slices.CompactFunc(w.out, bytes.Equal)
}

type leafWalker struct {
	path   []byte   // encoded path of the value being walked
	bounds []int    // len(path) at each object level entered, outermost first
	states [][]byte // marshaled SHA-256 state of path[:bounds[i]], for i < valid
	valid  int
	h      hash.Hash
	out    [][]byte
}

func (w *leafWalker) walk(v any) {
	switch x := v.(type) {
	case map[string]any:
		n := len(w.path)
		for k, child := range x {
			w.path = append(w.path, 0x01)
			w.path = putUvarintBytes(w.path, []byte(k))
			w.bounds = append(w.bounds, len(w.path))
			w.walk(child)
			w.bounds = w.bounds[:len(w.bounds)-1]
			w.valid = min(w.valid, len(w.bounds))
			w.path = w.path[:n]
		}
	case []any:
		for _, child := range x {
			w.walk(child)
		}
	default:
		n := len(w.path)
		raw := append(w.path, 0x00)
		switch s := x.(type) {
		case json.Number:
			raw = append(raw, 'n')
			raw = append(raw, canonicalNumber(s)...)
		case string:
			raw = append(raw, 's')
			raw = append(raw, s...)
		case bool:
			if s {
				raw = append(raw, 't')
			} else {
				raw = append(raw, 'f')
			}
		case nil:
			raw = append(raw, 'z')
		default:
			return // DecodeJSON produces nothing else
		}
		w.path = raw[:n] // keep the grown buffer
		if len(raw) <= maxInline {
			w.out = append(w.out, listPrefix(raw))
			return
		}
		w.pathHash()
		w.h.Write(raw[n:])
		w.out = append(w.out, w.h.Sum([]byte{prefixHashed}))
	}
}

// pathHash leaves w.h holding the SHA-256 state of the current path, the
// same as listPrefix's hash of the leaf's bytes would have after the path.
// It saves the state at every object level on the way, so the path's bytes
// are hashed once per time the walk enters them.
func (w *leafWalker) pathHash() {
	if w.h == nil {
		w.h = sha256.New()
	}
	from := 0
	if w.valid > 0 {
		if err := w.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(w.states[w.valid-1]); err != nil {
			panic(fmt.Sprintf("sha256 state: %v", err)) // its own MarshalBinary output
		}
		from = w.bounds[w.valid-1]
	} else {
		w.h.Reset()
	}
	for ; w.valid < len(w.bounds); w.valid++ {
		to := w.bounds[w.valid]
		w.h.Write(w.path[from:to])
		from = to
		if w.valid == len(w.states) {
			w.states = append(w.states, nil)
		}
		st, err := w.h.(encoding.BinaryAppender).AppendBinary(w.states[w.valid][:0])
		if err != nil {
			panic(fmt.Sprintf("sha256 state: %v", err))
		}
		w.states[w.valid] = st
	}
	w.h.Write(w.path[from:])
}

// seqSet is an ordered set of sequence numbers that can be probed from
// either end; the query planner composes posting lists into one.
type seqSet interface {
	// geq returns the smallest member >= t.
	geq(t uint64) (uint64, bool)
	// leq returns the largest member <= t.
	leq(t uint64) (uint64, bool)
}

// postingList is one list of a posting bucket.
type postingList struct {
	c      *bbolt.Cursor
	prefix []byte
	key    []byte // prefix + scratch sequence number
}

func newPostingList(b *bbolt.Bucket, prefix []byte) *postingList {
	return &postingList{c: b.Cursor(), prefix: prefix, key: postingKey(prefix, 0)}
}

func (p *postingList) seqOf(k []byte) (uint64, bool) {
	if len(k) != len(p.key) || !bytes.HasPrefix(k, p.prefix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(p.prefix):]), true
}

func (p *postingList) geq(t uint64) (uint64, bool) {
	binary.BigEndian.PutUint64(p.key[len(p.prefix):], t)
	k, _ := p.c.Seek(p.key)
	return p.seqOf(k)
}

func (p *postingList) leq(t uint64) (uint64, bool) {
	binary.BigEndian.PutUint64(p.key[len(p.prefix):], t)
	k, _ := p.c.Seek(p.key)
	if s, ok := p.seqOf(k); ok && s == t {
		return s, true
	}
	if k == nil {
		k, _ = p.c.Last()
	} else {
		k, _ = p.c.Prev()
	}
	return p.seqOf(k)
}

// memo remembers the last answer in each direction. Leapfrog and union
// probe the same child with slowly moving targets; an answer r for target
// q stays the answer for every target between q and r.
type memo struct {
	s seqSet

	gOK, gHave, gNone bool
	gQ, gR            uint64
	lOK, lHave, lNone bool
	lQ, lR            uint64
}

func (m *memo) geq(t uint64) (uint64, bool) {
	if m.gHave && m.gQ <= t && (m.gNone || m.gR >= t) {
		return m.gR, !m.gNone
	}
	r, ok := m.s.geq(t)
	m.gHave, m.gQ, m.gR, m.gNone = true, t, r, !ok
	return r, ok
}

func (m *memo) leq(t uint64) (uint64, bool) {
	if m.lHave && m.lQ >= t && (m.lNone || m.lR <= t) {
		return m.lR, !m.lNone
	}
	r, ok := m.s.leq(t)
	m.lHave, m.lQ, m.lR, m.lNone = true, t, r, !ok
	return r, ok
}

// intersection is a leapfrog join: every probe moves the target to the
// furthest child answer, so the sparsest list drives and the cost follows
// the smallest list, not the largest.
type intersection []seqSet

func (in intersection) geq(t uint64) (uint64, bool) {
	agreed := 0
	for i := 0; agreed < len(in); i = (i + 1) % len(in) {
		x, ok := in[i].geq(t)
		if !ok {
			return 0, false
		}
		if x == t {
			agreed++
		} else {
			t, agreed = x, 1
		}
	}
	return t, true
}

func (in intersection) leq(t uint64) (uint64, bool) {
	agreed := 0
	for i := 0; agreed < len(in); i = (i + 1) % len(in) {
		x, ok := in[i].leq(t)
		if !ok || x == 0 {
			return 0, false
		}
		if x == t {
			agreed++
		} else {
			t, agreed = x, 1
		}
	}
	return t, true
}

type union []seqSet

func (u union) geq(t uint64) (uint64, bool) {
	var best uint64
	found := false
	for _, s := range u {
		if x, ok := s.geq(t); ok && (!found || x < best) {
			best, found = x, true
		}
	}
	return best, found
}

func (u union) leq(t uint64) (uint64, bool) {
	var best uint64
	found := false
	for _, s := range u {
		if x, ok := s.leq(t); ok && (!found || x > best) {
			best, found = x, true
		}
	}
	return best, found
}

// canonicalNumber is contract.CanonicalNumber with a fast path for plain
// integers, which are already canonical unless they carry a leading zero
// or a minus zero.
func canonicalNumber(n json.Number) string {
	s := string(n)
	if isPlainInteger(s) {
		return s
	}
	return contract.CanonicalNumber(n)
}

func isPlainInteger[T string | []byte](s T) bool {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	if i >= len(s) || s[i] == '0' || len(s)-i > 18 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
