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

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/jsontext"
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

// A payload's leaves, from its bytes.
//
// Apply validates and indexes every appended payload in one pass over its
// bytes. Decoding it with encoding/json into maps and walking those
// (contract.DecodeJSON, then leafPrefixes) cost a node about a tenth of its
// CPU under append load: json.Valid scans the payload, the decoder scans it
// again, and every object and string is allocated only to be walked once.
//
// This is a replicated state machine, so payloadLeaves must accept exactly
// what contract.DecodeJSON accepts (json.Valid: encoding/json's scanner) and
// produce exactly the prefixes leafPrefixes produces from the decoded value:
// replicas of different versions apply the same log and must agree on which
// appends fail and on every posting key. Strings, numbers and whitespace are
// read with internal/jsontext's primitives, which follow encoding/json
// closely (its doc says how); in short:
//
//   - the grammar is RFC 8259 with encoding/json's leniency: any byte >=
//     0x20 but '"' and '\' is allowed in a string, invalid UTF-8 included;
//     containers nest at most maxJSONDepth deep (the scanner's
//     maxNestingDepth);
//   - strings and keys decode as decode.go's unquote does: invalid UTF-8
//     becomes U+FFFD per byte, a \u surrogate pairs only with a directly
//     following \u low surrogate and otherwise becomes U+FFFD on its own;
//   - numbers are the literal text (UseNumber), canonicalized by
//     canonicalNumber as leafPrefixes does.
//
// One difference is deliberate: for an object with a duplicate key,
// encoding/json keeps the last value, and payloadLeaves indexes the leaves
// of every occurrence. The extra postings only widen a query's candidate
// set, and every candidate is verified with the contract's matcher (on the
// decoded payload, last value wins), so results do not change; the leaves
// are still a function of the bytes alone, the same on every replica.

// errNotJSON is DecodeJSON's error for a payload json.Valid rejects, so a
// refused append reads as it did.
var errNotJSON = jsontext.ErrInvalid

// maxJSONDepth is encoding/json's maxNestingDepth: the scanner rejects a
// value whose containers nest deeper.
const maxJSONDepth = jsontext.MaxDepth

// leafScanner is payloadLeaves' reusable state. The prefixes it returns
// share its buffers and stay valid until reset, so one command's events can
// be checked first and indexed after.
type leafScanner struct {
	// leafWalker's path, bounds and saved hash states are kept exactly as
	// its walk keeps them, so long leaves are hashed by the same pathHash:
	// linear in the payload however deep, and the same bytes.
	leafWalker
	open []int  // per open container, innermost last: -1 for an array, for an object len(path) at its start
	key  []byte // the decoded key being read
	buf  []byte // the prefixes since reset, back to back
	ends []int  // where each prefix of the current payload ends in buf
}

// maxKeptScanBuf is the largest prefix buffer reset keeps for the next
// command: one huge payload should not pin its memory for a whole
// transaction of small ones.
const maxKeptScanBuf = 1 << 20

// reset forgets every prefix returned so far.
func (s *leafScanner) reset() {
	if cap(s.buf) > maxKeptScanBuf {
		s.buf = nil
	}
	s.buf = s.buf[:0]
	clear(s.out)
	s.out = s.out[:0]
}

// payloadLeaves validates raw as one JSON value, as contract.DecodeJSON
// would, and returns the distinct posting prefixes of its scalar leaves,
// sorted: leafPrefixes of the decoded value (but see the section comment
// above on duplicate keys). The prefixes are s's until s.reset.
func payloadLeaves(raw []byte, s *leafScanner) ([][]byte, error) {
	bufStart, outStart := len(s.buf), len(s.out)
	s.path, s.bounds, s.valid = s.path[:0], s.bounds[:0], 0
	s.open, s.ends = s.open[:0], s.ends[:0]
	if !s.scan(raw) {
		s.buf = s.buf[:bufStart]
		return nil, errNotJSON
	}
	// The slices are cut only now: buf may have moved while it grew.
	from := bufStart
	for _, end := range s.ends {
		s.out = append(s.out, s.buf[from:end:end])
		from = end
	}
	leaves := s.out[outStart:]
	slices.SortFunc(leaves, bytes.Compare)
	leaves = slices.CompactFunc(leaves, bytes.Equal)
	s.out = s.out[:outStart+len(leaves)]
	return leaves[:len(leaves):len(leaves)], nil
}

// scan walks raw iteratively (the depth is the input's to choose), adding
// the prefix of every scalar leaf; it reports whether raw is valid.
func (s *leafScanner) scan(raw []byte) bool {
	i := jsontext.SkipSpace(raw, 0)
	for {
		// A value starts at i.
		if i >= len(raw) {
			return false
		}
		ok := true
		switch c := raw[i]; c {
		case '[':
			if len(s.open) == maxJSONDepth {
				return false
			}
			s.open = append(s.open, -1)
			if i = jsontext.SkipSpace(raw, i+1); i < len(raw) && raw[i] == ']' {
				s.open = s.open[:len(s.open)-1]
				i++
				break
			}
			continue
		case '{':
			if len(s.open) == maxJSONDepth {
				return false
			}
			s.open = append(s.open, len(s.path))
			if i = jsontext.SkipSpace(raw, i+1); i < len(raw) && raw[i] == '}' {
				s.open = s.open[:len(s.open)-1]
				i++
				break
			}
			// The object's level in bounds, set by each of its keys.
			s.bounds = append(s.bounds, 0)
			if i, ok = s.member(raw, i); !ok {
				return false
			}
			continue
		case '"':
			n := len(s.path)
			leaf := append(s.path, 0x00, 's')
			if leaf, i, ok = jsontext.AppendUnquoted(leaf, raw, i); !ok {
				return false
			}
			s.emit(leaf, n)
		case 't', 'f', 'n':
			lit, tag := "null", byte('z')
			switch c {
			case 't':
				lit, tag = "true", 't'
			case 'f':
				lit, tag = "false", 'f'
			}
			if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
				return false
			}
			i += len(lit)
			n := len(s.path)
			s.emit(append(s.path, 0x00, tag), n)
		default:
			end, ok := jsontext.ScanNumber(raw, i)
			if !ok {
				return false
			}
			n := len(s.path)
			leaf := append(s.path, 0x00, 'n')
			if num := raw[i:end]; isPlainInteger(num) {
				leaf = append(leaf, num...)
			} else {
				leaf = append(leaf, canonicalNumber(json.Number(num))...)
			}
			i = end
			s.emit(leaf, n)
		}
		// A value ended before i: close containers until the next value
		// starts or the input ends.
		for {
			i = jsontext.SkipSpace(raw, i)
			if len(s.open) == 0 {
				return i == len(raw)
			}
			if i >= len(raw) {
				return false
			}
			top := s.open[len(s.open)-1]
			c := raw[i]
			if top < 0 {
				if c == ']' {
					s.open = s.open[:len(s.open)-1]
					i++
					continue
				}
				if c != ',' {
					return false
				}
				i = jsontext.SkipSpace(raw, i+1)
				break
			}
			if c == '}' {
				s.open = s.open[:len(s.open)-1]
				s.path = s.path[:top]
				s.bounds = s.bounds[:len(s.bounds)-1]
				s.valid = min(s.valid, len(s.bounds))
				i++
				continue
			}
			if c != ',' {
				return false
			}
			if i, ok = s.member(raw, jsontext.SkipSpace(raw, i+1)); !ok {
				return false
			}
			break
		}
	}
}

// member reads an object member's key and colon at i (after whitespace)
// and makes the key the innermost step of the path; it returns where the
// member's value starts (after whitespace).
func (s *leafScanner) member(raw []byte, i int) (int, bool) {
	if i >= len(raw) || raw[i] != '"' {
		return i, false
	}
	var ok bool
	if s.key, i, ok = jsontext.AppendUnquoted(s.key[:0], raw, i); !ok {
		return i, false
	}
	if i = jsontext.SkipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
		return i, false
	}
	level := len(s.bounds) - 1
	s.path = append(s.path[:s.open[len(s.open)-1]], 0x01)
	s.path = putUvarintBytes(s.path, s.key)
	s.bounds[level] = len(s.path)
	// A hash state saved for this level or deeper was of another key.
	s.valid = min(s.valid, level)
	return jsontext.SkipSpace(raw, i+1), true
}

// emit adds the prefix of leaf, the current path (leaf[:n]) followed by
// the value's tag and bytes, as listPrefix would make it.
func (s *leafScanner) emit(leaf []byte, n int) {
	s.path = leaf[:n] // keep the grown buffer
	if len(leaf) <= maxInline {
		s.buf = append(s.buf, prefixInline)
		s.buf = putUvarintBytes(s.buf, leaf)
	} else {
		s.pathHash()
		s.h.Write(leaf[n:])
		s.buf = s.h.Sum(append(s.buf, prefixHashed))
	}
	s.ends = append(s.ends, len(s.buf))
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
