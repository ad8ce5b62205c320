package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
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
// appends fail and on every posting key. Where it follows encoding/json
// closely, the comments say which part of it:
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
var errNotJSON = errors.New("not a single valid JSON value")

// maxJSONDepth is encoding/json's maxNestingDepth: the scanner rejects a
// value whose containers nest deeper.
const maxJSONDepth = 10000

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
	i := skipSpace(raw, 0)
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
			if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == ']' {
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
			if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == '}' {
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
			if leaf, i, ok = appendUnquoted(leaf, raw, i); !ok {
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
			end, ok := scanNumber(raw, i)
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
			i = skipSpace(raw, i)
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
				i = skipSpace(raw, i+1)
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
			if i, ok = s.member(raw, skipSpace(raw, i+1)); !ok {
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
	if s.key, i, ok = appendUnquoted(s.key[:0], raw, i); !ok {
		return i, false
	}
	if i = skipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
		return i, false
	}
	level := len(s.bounds) - 1
	s.path = append(s.path[:s.open[len(s.open)-1]], 0x01)
	s.path = putUvarintBytes(s.path, s.key)
	s.bounds[level] = len(s.path)
	// A hash state saved for this level or deeper was of another key.
	s.valid = min(s.valid, level)
	return skipSpace(raw, i+1), true
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

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (the scanner's isSpace).
func skipSpace(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// scanNumber returns the end of the JSON number starting at i: -?, 0 or a
// digit 1-9 and more digits, optionally . and digits, optionally e or E,
// an optional sign and digits (the scanner's stateNeg ... stateE0).
func scanNumber(raw []byte, i int) (int, bool) {
	if i < len(raw) && raw[i] == '-' {
		i++
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	case i < len(raw) && '1' <= raw[i] && raw[i] <= '9':
		i = skipDigits(raw, i+1)
	default:
		return i, false
	}
	if i < len(raw) && raw[i] == '.' {
		if i++; i >= len(raw) || !isDigit(raw[i]) {
			return i, false
		}
		i = skipDigits(raw, i)
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		if i++; i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if i >= len(raw) || !isDigit(raw[i]) {
			return i, false
		}
		i = skipDigits(raw, i)
	}
	return i, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(raw []byte, i int) int {
	for i < len(raw) && isDigit(raw[i]) {
		i++
	}
	return i
}

// appendUnquoted validates the JSON string whose opening quote is at i and
// appends its value to dst as encoding/json's unquote decodes it; it
// returns the index after the closing quote.
//
// Reading raw past the string's end is safe where unquote reads only the
// string: a UTF-8 sequence cannot continue over the closing quote (0x22 is
// no continuation byte), and four hex digits after \u cannot include it.
func appendUnquoted(dst, raw []byte, i int) ([]byte, int, bool) {
	i++
	for {
		start := i
		for i < len(raw) {
			if c := raw[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		dst = append(dst, raw[start:i]...)
		if i >= len(raw) {
			return dst, i, false
		}
		switch c := raw[i]; {
		case c == '"':
			return dst, i + 1, true
		case c < 0x20:
			// The scanner refuses control characters in strings.
			return dst, i, false
		case c >= utf8.RuneSelf:
			// The scanner takes any byte here; unquote keeps a valid
			// sequence and makes each byte of an invalid one U+FFFD
			// (DecodeRune's RuneError of size 1).
			r, size := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		default: // a backslash
			if i+1 >= len(raw) {
				return dst, i, false
			}
			switch e := raw[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw, i+2)
				if r < 0 {
					return dst, i, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// unquote pairs it with the escape right after, if
					// that one completes a pair; else it stands alone as
					// U+FFFD and the next escape is read on its own.
					r2 := rune(-1)
					if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2 = hex4(raw, i+2)
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				return dst, i, false
			}
			i += 2
		}
	}
}

// hex4 is the value of the four hex digits at raw[i:], or -1.
func hex4(raw []byte, i int) rune {
	if i+4 > len(raw) {
		return -1
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
