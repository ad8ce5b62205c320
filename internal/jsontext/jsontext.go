package jsontext

import (
	"encoding/json"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is encoding/json's maxNestingDepth: its scanner rejects a value
// whose containers nest deeper.
const MaxDepth = 10000

// ErrInvalid is Decode's and Project's error for text json.Valid rejects.
// Its message is the one stores have always given for such a value.
var ErrInvalid = errors.New("not a single valid JSON value")

// Valid reports whether raw is one JSON value with optional surrounding
// whitespace, as json.Valid does.
func Valid(raw []byte) bool {
	i, ok := skipValue(raw, SkipSpace(raw, 0), 0)
	return ok && SkipSpace(raw, i) == len(raw)
}

// Decode decodes raw as json.Valid and then a json.Decoder with UseNumber
// would: objects as map[string]any (the last of duplicate keys wins),
// arrays as []any (empty, not nil, for []), strings, json.Number, bool and
// nil.
func Decode(raw []byte) (any, error) {
	var d decoder
	return d.top(raw, nil)
}

// Project is Decode, except that a top-level object keeps only the members
// whose keys are in keys (the last of duplicates, as Decode keeps); the
// others are validated and skipped, never allocated. A value that is not
// an object is decoded whole. It lets a matcher whose predicates name a few
// keys compare them against a payload without building all of it: for any
// predicate p whose top-level keys are in keys, contract's ValueMatches(p,
// Project(raw)) equals ValueMatches(p, Decode(raw)).
func Project(raw []byte, keys map[string]struct{}) (any, error) {
	d := decoder{project: true}
	return d.top(raw, keys)
}

type decoder struct {
	project bool
	scratch []byte // unquoted strings that needed unescaping
}

func (d *decoder) top(raw []byte, keys map[string]struct{}) (any, error) {
	i := SkipSpace(raw, 0)
	var (
		v  any
		ok bool
	)
	if d.project && i < len(raw) && raw[i] == '{' {
		v, i, ok = d.object(raw, i, 0, keys, true)
	} else {
		v, i, ok = d.value(raw, i, 0)
	}
	if !ok || SkipSpace(raw, i) != len(raw) {
		return nil, ErrInvalid
	}
	return v, nil
}

// value decodes the value starting at i (no whitespace before it) inside
// depth open containers; it returns the index after it.
func (d *decoder) value(raw []byte, i, depth int) (any, int, bool) {
	if i >= len(raw) {
		return nil, i, false
	}
	switch c := raw[i]; c {
	case '{':
		return d.object(raw, i, depth, nil, false)
	case '[':
		if depth == MaxDepth {
			return nil, i, false
		}
		arr := make([]any, 0)
		i = SkipSpace(raw, i+1)
		if i < len(raw) && raw[i] == ']' {
			return arr, i + 1, true
		}
		for {
			var (
				v  any
				ok bool
			)
			if v, i, ok = d.value(raw, i, depth+1); !ok {
				return nil, i, false
			}
			arr = append(arr, v)
			if i = SkipSpace(raw, i); i >= len(raw) {
				return nil, i, false
			}
			switch raw[i] {
			case ']':
				return arr, i + 1, true
			case ',':
				i = SkipSpace(raw, i+1)
			default:
				return nil, i, false
			}
		}
	case '"':
		return d.str(raw, i)
	case 't':
		return literal(raw, i, "true", true)
	case 'f':
		return literal(raw, i, "false", false)
	case 'n':
		return literal(raw, i, "null", nil)
	default:
		end, ok := ScanNumber(raw, i)
		if !ok {
			return nil, end, false
		}
		return json.Number(raw[i:end]), end, true
	}
}

// object decodes the object at i; with filter it keeps only the members
// whose keys are in keys and skips the others' values.
func (d *decoder) object(raw []byte, i, depth int, keys map[string]struct{}, filter bool) (any, int, bool) {
	if depth == MaxDepth {
		return nil, i, false
	}
	obj := make(map[string]any)
	i = SkipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return obj, i + 1, true
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return nil, i, false
		}
		var (
			key  []byte
			ok   bool
			v    any
			keep = true
		)
		if key, i, ok = AppendUnquoted(d.scratch[:0], raw, i); !ok {
			return nil, i, false
		}
		d.scratch = key
		if filter {
			_, keep = keys[string(key)]
		}
		if i = SkipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
			return nil, i, false
		}
		i = SkipSpace(raw, i+1)
		if keep {
			k := string(key) // before value reuses scratch
			if v, i, ok = d.value(raw, i, depth+1); !ok {
				return nil, i, false
			}
			obj[k] = v
		} else if i, ok = skipValue(raw, i, depth+1); !ok {
			return nil, i, false
		}
		if i = SkipSpace(raw, i); i >= len(raw) {
			return nil, i, false
		}
		switch raw[i] {
		case '}':
			return obj, i + 1, true
		case ',':
			i = SkipSpace(raw, i+1)
		default:
			return nil, i, false
		}
	}
}

// str decodes the string at i; a string of plain ASCII without escapes
// (most keys and values) is one allocation.
func (d *decoder) str(raw []byte, i int) (any, int, bool) {
	j := i + 1
	for j < len(raw) {
		c := raw[j]
		if c == '"' {
			return string(raw[i+1 : j]), j + 1, true
		}
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			break
		}
		j++
	}
	s, end, ok := AppendUnquoted(d.scratch[:0], raw, i)
	d.scratch = s
	if !ok {
		return nil, end, false
	}
	return string(s), end, true
}

func literal(raw []byte, i int, lit string, v any) (any, int, bool) {
	if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
		return nil, i, false
	}
	return v, i + len(lit), true
}

// skipValue validates the value at i (no whitespace before it) inside
// depth open containers without decoding it; it returns the index after
// it.
func skipValue(raw []byte, i, depth int) (int, bool) {
	if i >= len(raw) {
		return i, false
	}
	switch c := raw[i]; c {
	case '{', '[':
		if depth == MaxDepth {
			return i, false
		}
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		i = SkipSpace(raw, i+1)
		if i < len(raw) && raw[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i, ok = skipString(raw, i); !ok {
					return i, false
				}
				if i = SkipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
					return i, false
				}
				i = SkipSpace(raw, i+1)
			}
			if i, ok = skipValue(raw, i, depth+1); !ok {
				return i, false
			}
			if i = SkipSpace(raw, i); i >= len(raw) {
				return i, false
			}
			switch raw[i] {
			case closer:
				return i + 1, true
			case ',':
				i = SkipSpace(raw, i+1)
			default:
				return i, false
			}
		}
	case '"':
		return skipString(raw, i)
	case 't':
		_, end, ok := literal(raw, i, "true", nil)
		return end, ok
	case 'f':
		_, end, ok := literal(raw, i, "false", nil)
		return end, ok
	case 'n':
		_, end, ok := literal(raw, i, "null", nil)
		return end, ok
	default:
		return ScanNumber(raw, i)
	}
}

// skipString validates the string whose opening quote should be at i and
// returns the index after its closing quote. The scanner takes any byte
// from 0x20 but '"' and '\' as it is, invalid UTF-8 included, and an
// escape is one of \" \\ \/ \b \f \n \r \t or \u and four hex digits.
func skipString(raw []byte, i int) (int, bool) {
	if i >= len(raw) || raw[i] != '"' {
		return i, false
	}
	for i++; i < len(raw); i++ {
		for i < len(raw) && raw[i] >= 0x20 && raw[i] != '"' && raw[i] != '\\' {
			i++
		}
		if i >= len(raw) {
			break
		}
		switch c := raw[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i+1 >= len(raw) {
				return i, false
			}
			switch raw[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(raw, i+2) < 0 {
					return i, false
				}
				i += 5
			default:
				return i, false
			}
		}
	}
	return i, false
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (the scanner's isSpace).
func SkipSpace(raw []byte, i int) int {
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

// ScanNumber returns the end of the JSON number starting at i: -?, 0 or a
// digit 1-9 and more digits, optionally . and digits, optionally e or E,
// an optional sign and digits (the scanner's stateNeg ... stateE0).
func ScanNumber(raw []byte, i int) (int, bool) {
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

// AppendUnquoted validates the JSON string whose opening quote is at i and
// appends its value to dst as encoding/json's unquote decodes it; it
// returns the index after the closing quote.
//
// Reading raw past the string's end is safe where unquote reads only the
// string: a UTF-8 sequence cannot continue over the closing quote (0x22 is
// no continuation byte), and four hex digits after \u cannot include it.
func AppendUnquoted(dst, raw []byte, i int) ([]byte, int, bool) {
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
