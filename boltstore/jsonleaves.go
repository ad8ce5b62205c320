package boltstore

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/factstr/factstr-go/internal/jsontext"
)

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
// sorted: leafPrefixes of the decoded value (but see the file comment on
// duplicate keys). The prefixes are s's until s.reset.
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
