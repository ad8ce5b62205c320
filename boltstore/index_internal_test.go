package boltstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// oldLeafPrefixes is the walk the indexes on disk were built with (a path
// copy per level): the new walk must produce exactly its prefixes.
func oldLeafPrefixes(v any) [][]byte {
	var raws [][]byte
	var walk func(v any, path []byte)
	walk = func(v any, path []byte) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				p := append(path[:len(path):len(path)], 0x01)
				walk(child, putUvarintBytes(p, []byte(k)))
			}
		case []any:
			for _, child := range x {
				walk(child, path)
			}
		default:
			raw := append(path[:len(path):len(path)], 0x00)
			switch s := x.(type) {
			case json.Number:
				raw = append(append(raw, 'n'), contract.CanonicalNumber(s)...)
			case string:
				raw = append(append(raw, 's'), s...)
			case bool:
				raw = append(raw, map[bool]byte{true: 't', false: 'f'}[s])
			case nil:
				raw = append(raw, 'z')
			}
			raws = append(raws, listPrefix(raw))
		}
	}
	walk(v, nil)
	slices.SortFunc(raws, bytes.Compare)
	return slices.CompactFunc(raws, bytes.Equal)
}

func TestLeafPrefixesUnchanged(t *testing.T) {
	long := strings.Repeat("k", 150)
	cases := []string{
		`1`, `"s"`, `null`, `[]`, `{}`, `[true,false,null,1,"1"]`,
		`{"a":{"b":[1,2,{"c":"x"}],"d":10.0},"e":[[1],[2,[3]]]}`,
		`{"` + long + `":{"` + long + `":[1,2,3,"` + long + `"],"x":{"` + long + `":true}},"y":1}`,
		`{"` + long + `":"` + strings.Repeat("v", 300) + `","z":{"` + long + `":{"` + long + `":{"q":[null,{"r":1}]}}}}`,
		strings.Repeat(`{"`+long+`":`, 40) + `[1,2,3,{"a":4,"b":[5,6]},"x"]` + strings.Repeat("}", 40),
		`{"n":` + strings.Repeat("9", 500) + `,"m":1e-3,"k":[0.5,5e-1]}`,
	}
	for i, c := range cases {
		v, err := contract.DecodeJSON([]byte(c))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got, want := leafPrefixes(v), oldLeafPrefixes(v)
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Errorf("case %d (%.60s...): %d prefixes, want %d; the index keys differ from those on disk", i, c, len(got), len(want))
		}
	}
}

func FuzzLeafPrefixesUnchanged(f *testing.F) {
	f.Add(`{"a":[1,{"b":"c"}]}`, 3)
	f.Add(`[1,2,3]`, 60)
	f.Fuzz(func(t *testing.T, inner string, depth int) {
		depth = depth % 80
		if depth < 0 {
			depth = -depth
		}
		doc := strings.Repeat(`{"`+strings.Repeat("p", 7)+`":`, depth) + inner + strings.Repeat("}", depth)
		v, err := contract.DecodeJSON([]byte(doc))
		if err != nil {
			return
		}
		if got, want := leafPrefixes(v), oldLeafPrefixes(v); !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("%s: prefixes differ: %s vs %s", doc, fmt.Sprint(len(got)), fmt.Sprint(len(want)))
		}
	})
}
