package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// shapeLimits are the structural rules a JSON document (a payload or a
// predicate) must follow; zero fields mean no limit. Strictness (valid UTF-8
// inside strings, no duplicate object keys) is not optional: a document the
// decoder would silently repair or merge is refused instead.
type shapeLimits struct {
	maxDepth  int // nested objects and arrays
	maxLeaves int // scalar values
	maxDigits int // digits of one number, exponent included
}

func (l Limits) shape() shapeLimits {
	return shapeLimits{maxDepth: l.MaxPayloadDepth, maxLeaves: l.MaxPayloadLeaves, maxDigits: l.MaxNumberDigits}
}

// keysInline is how many keys of one object are compared pairwise before
// the object gets a map: small objects, the common case, allocate nothing.
const keysInline = 16

type shapeFrame struct {
	object  bool
	wantKey bool
	keys    int                 // start of this object's keys in checker.keys
	set     map[string]struct{} // once the object has more than keysInline keys
}

type shapeChecker struct {
	raw    []byte
	frames []shapeFrame
	keys   [][]byte // decoded keys of the open objects, innermost last
	leaves int
}

// checkShape reports the first rule raw breaks. raw must already be one
// valid JSON value (json.Valid), so the walk only tracks structure. It runs
// in one pass, with memory bounded by the document's size whatever its
// nesting.
func checkShape(raw []byte, lim shapeLimits) error {
	c := shapeChecker{raw: raw}
	for i := 0; i < len(raw); {
		switch b := raw[i]; b {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			if n := len(c.frames); n > 0 && c.frames[n-1].object {
				c.frames[n-1].wantKey = true
			}
			i++
		case '{', '[':
			if lim.maxDepth > 0 && len(c.frames) >= lim.maxDepth {
				return fmt.Errorf("nested deeper than %d levels (at byte %d); flatten the document", lim.maxDepth, i)
			}
			c.frames = append(c.frames, shapeFrame{object: b == '{', wantKey: b == '{', keys: len(c.keys)})
			i++
		case '}', ']':
			top := c.frames[len(c.frames)-1]
			c.keys = c.keys[:top.keys]
			c.frames = c.frames[:len(c.frames)-1]
			i++
		case '"':
			end := stringEnd(raw, i)
			s := raw[i+1 : end]
			// Escapes are ASCII, so the raw bytes are valid UTF-8 exactly
			// when the unescaped string is.
			if !utf8.Valid(s) {
				return fmt.Errorf("string at byte %d is not valid UTF-8", i)
			}
			if n := len(c.frames); n > 0 && c.frames[n-1].wantKey {
				c.frames[n-1].wantKey = false
				if err := c.addKey(&c.frames[n-1], s, i); err != nil {
					return err
				}
			} else if err := c.leaf(lim, i); err != nil {
				return err
			}
			i = end + 1
		case 't', 'n':
			if err := c.leaf(lim, i); err != nil {
				return err
			}
			i += 4
		case 'f':
			if err := c.leaf(lim, i); err != nil {
				return err
			}
			i += 5
		default: // a number
			start, digits := i, 0
			for ; i < len(raw) && isNumberByte(raw[i]); i++ {
				if raw[i] >= '0' && raw[i] <= '9' {
					digits++
				}
			}
			if lim.maxDigits > 0 && digits > lim.maxDigits {
				return fmt.Errorf("number at byte %d has %d digits, the maximum is %d; send it as a string", start, digits, lim.maxDigits)
			}
			if err := c.leaf(lim, start); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *shapeChecker) leaf(lim shapeLimits, at int) error {
	c.leaves++
	if lim.maxLeaves > 0 && c.leaves > lim.maxLeaves {
		return fmt.Errorf("more than %d scalar values (at byte %d); split the document", lim.maxLeaves, at)
	}
	return nil
}

// addKey records an object key and refuses a repeated one: the decoder
// would keep only the last value, so what is stored would not be what
// matching sees.
func (c *shapeChecker) addKey(f *shapeFrame, s []byte, at int) error {
	key := s
	if bytes.IndexByte(s, '\\') >= 0 {
		var u string
		if err := json.Unmarshal(c.raw[at:at+len(s)+2], &u); err != nil {
			return fmt.Errorf("key at byte %d: %w", at, err)
		}
		key = []byte(u)
	}
	open := c.keys[f.keys:]
	if f.set == nil && len(open) < keysInline {
		for _, k := range open {
			if bytes.Equal(k, key) {
				return fmt.Errorf("object has the key %q twice (at byte %d); every key must be unique", key, at)
			}
		}
		c.keys = append(c.keys, key)
		return nil
	}
	if f.set == nil {
		f.set = make(map[string]struct{}, 2*keysInline)
		for _, k := range open {
			f.set[string(k)] = struct{}{}
		}
	}
	if _, dup := f.set[string(key)]; dup {
		return fmt.Errorf("object has the key %q twice (at byte %d); every key must be unique", key, at)
	}
	f.set[string(key)] = struct{}{}
	return nil
}

// stringEnd returns the index of the closing quote of the string that
// opens at raw[start].
func stringEnd(raw []byte, start int) int {
	for i := start + 1; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(raw) - 1 // unreachable for valid JSON
}

func isNumberByte(b byte) bool {
	return (b >= '0' && b <= '9') || b == '-' || b == '+' || b == '.' || b == 'e' || b == 'E'
}
