package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// referenceLeaves is what Apply indexed before payloadLeaves: the payload
// decoded by contract.DecodeJSON and walked by leafPrefixes.
func referenceLeaves(raw []byte) ([][]byte, error) {
	v, err := contract.DecodeJSON(raw)
	if err != nil {
		return nil, err
	}
	return leafPrefixes(v), nil
}

// tokenLeaves is a second, independent reference that, like payloadLeaves,
// indexes every occurrence of a duplicate key: encoding/json's token
// stream (which unquotes keys and strings as Decode does), each leaf's
// bytes hashed whole by listPrefix. dup reports a duplicate key.
func tokenLeaves(t testing.TB, raw []byte) (leaves [][]byte, dup bool) {
	t.Helper()
	type frame struct {
		obj, wantKey bool
		base         int
		keys         map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var stack []frame
	var path []byte
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("token stream of an accepted payload: %v", err)
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			top := &stack[n-1]
			if tok == json.Delim('}') {
				path = path[:top.base]
				stack = stack[:n-1]
				valueDone()
				continue
			}
			k := tok.(string)
			dup = dup || top.keys[k]
			top.keys[k] = true
			path = putUvarintBytes(append(path[:top.base], 0x01), []byte(k))
			top.wantKey = false
			continue
		}
		leaf := append(path[:len(path):len(path)], 0x00)
		switch x := tok.(type) {
		case json.Delim:
			switch x {
			case '{':
				stack = append(stack, frame{obj: true, wantKey: true, base: len(path), keys: map[string]bool{}})
			case '[':
				stack = append(stack, frame{})
			case ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		case json.Number:
			leaf = append(append(leaf, 'n'), contract.CanonicalNumber(x)...)
		case string:
			leaf = append(append(leaf, 's'), x...)
		case bool:
			leaf = append(leaf, map[bool]byte{true: 't', false: 'f'}[x])
		case nil:
			leaf = append(leaf, 'z')
		}
		leaves = append(leaves, listPrefix(leaf))
		valueDone()
	}
	slices.SortFunc(leaves, bytes.Compare)
	return slices.CompactFunc(leaves, bytes.Equal), dup
}

// dirty leaves a scanner with saved hash states, a deep path and prefixes
// of its own, so a check with it also finds state leaking between payloads.
func dirty(s *leafScanner) {
	long := strings.Repeat("d", 120)
	doc := `{"` + long + `":{"` + long + `":["` + strings.Repeat("v", 200) + `",{"x":1}]}}`
	if _, err := payloadLeaves([]byte(doc), s); err != nil {
		panic(err)
	}
	if _, err := payloadLeaves([]byte(`{"a":[1,`), s); err == nil {
		panic("accepted a truncated payload")
	}
}

// checkPayloadLeaves compares payloadLeaves with the references.
func checkPayloadLeaves(t testing.TB, raw []byte) {
	t.Helper()
	want, refErr := referenceLeaves(raw)
	if ok := json.Valid(raw); ok != (refErr == nil) {
		t.Fatalf("%q: json.Valid %v but DecodeJSON error %v", raw, ok, refErr)
	}
	got, err := payloadLeaves(raw, new(leafScanner))
	var used leafScanner
	dirty(&used)
	again, errAgain := payloadLeaves(raw, &used)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("%.200q: payloadLeaves error %v, DecodeJSON error %v", raw, err, refErr)
	}
	if (errAgain == nil) != (err == nil) || !slices.EqualFunc(got, again, bytes.Equal) {
		t.Fatalf("%.200q: a used scanner gives another outcome (%v, %d leaves) than a new one (%v, %d leaves)", raw, errAgain, len(again), err, len(got))
	}
	if err != nil {
		if err.Error() != refErr.Error() {
			t.Fatalf("%.200q: error %q, DecodeJSON's is %q", raw, err, refErr)
		}
		return
	}
	all, dup := tokenLeaves(t, raw)
	if !slices.EqualFunc(got, all, bytes.Equal) {
		t.Fatalf("%.200q: %d leaves, the token stream gives %d:\n got %q\nwant %q", raw, len(got), len(all), got, all)
	}
	if !dup {
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("%.200q: %d leaves, leafPrefixes gives %d:\n got %q\nwant %q", raw, len(got), len(want), got, want)
		}
		return
	}
	for _, w := range want {
		if _, found := slices.BinarySearchFunc(got, w, bytes.Compare); !found {
			t.Fatalf("%.200q (duplicate keys): leafPrefixes' leaf %q is missing", raw, w)
		}
	}
}

func deep(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var payloadLeavesCases = func() []string {
	long := strings.Repeat("k", 100)
	longVal := strings.Repeat("v", 190)
	cases := []string{
		// scalars, whitespace, garbage
		`1`, `-0`, `0`, `-0.0`, `1e5`, `1.50`, `1E+2`, `1e-2`, `12345678901234567890`, `-12345678901234567890`,
		`123456789012345678`, `1234567890123456789`, `0.1e400`, `1e401`, `1e-401`, `100e-2`, `0.000`, `5e0`,
		`"s"`, `""`, `true`, `false`, `null`, ` 1 `, "\t\r\n 1\n", "\v1", "\f1", "\u00a01",
		``, ` `, `01`, `-`, `-01`, `1.`, `.1`, `1e`, `1e+`, `+1`, `1.e3`, `0x1`, `NaN`, `1 2`, `1,`, `[1]]`, `{}}`,
		`tru`, `truex`, `nul`, `nulll`, `falsey`, `True`, `"\u00"`, `"abc`, `"`, `'a'`,
		// strings
		`"a\"b\\c\/d\be\ff\ng\rh\ti"`, `"\u0041\u00e9\u4e2d"`, `"\u0000"`, `"\uD83D\uDE00"`, `"\ud83d\ude00"`,
		`"\ud800"`, `"\udc00"`, `"\ud800x"`, `"\ud800\u0041"`, `"\ud800\ud800\udc00"`, `"\udc00\ud800"`,
		`"\ud800\"`, `"\ud800\\"`, `"\ud800\n"`, `"\uDBFF\uDFFF"`, `"\uFFFD"`, `"\uffff"`,
		`"\x"`, `"\'"`, `"\U0041"`, `"\u12G4"`, `"\u123"`, "\"a\x01b\"", "\"\x1f\"", "\"\x7f\"", "\"a\nb\"",
		"\"\xff\"", "\"\xc3\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xef\xbf\xbd\"",
		"\"\xe4\xb8\"", "{\"\xff\":\"\xfe\xfd\"}", "{\"\\ud800\":1}", "\"\xc0\x80\"", "\"\xe2\x82\"x",
		// containers
		`{}`, `[]`, `[{}]`, `{"a":{}}`, `{"a":[]}`, `[[],[[]],{}]`, ` [ 1 , { "a" : [ true , null ] } ] `,
		`[1,2,3,1,2,3]`, `[1,1.0,10e-1,"1"]`, `{"a":1,"b":{"c":[1,{"d":"e"}],"f":null}}`,
		`[{"a":1},{"a":2},{"b":[{"a":3}]}]`, `{"":""}`, `{"":{"":{"":[]}}}`, `{"a":1,}`, `[1,]`, `[,1]`,
		`{"a"}`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{1:1}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":1]`, `[1}`,
		`[`, `{`, `{"a":`, `{"a"`, `]`, `}`, `[[]`, `{"a":[1,2}`,
		// duplicate keys
		`{"a":1,"a":2}`, `{"a":{"b":1},"a":{"c":2}}`, `{"a":[1,2],"a":"x"}`, `{"a":1,"b":{"a":2,"a":3},"a":1}`,
		`{"a":{"x":1},"b":2,"a":{"x":1}}`, `{"\u0061":1,"a":2}`,
		// long prefixes: hashed, under short and long paths
		`"` + longVal + `"`, `"` + strings.Repeat("v", 189) + `"`, `"` + strings.Repeat("v", 191) + `"`,
		`{"` + long + `":"` + long + `"}`, `{"` + long + `":[1,"` + long + `",{"` + long + `":2}]}`,
		`{"pad":"` + strings.Repeat("x", 170) + `","w":7}`,
		`{"` + long + `":{"` + long + `":{"a":"` + longVal + `","b":"` + longVal + `"},"c":"` + longVal + `"},"d":"` + longVal + `"}`,
		`[{"` + long + `":"` + longVal + `"},{"` + long + `":"` + longVal + `"},{"x":{"` + long + `":1}}]`,
		`{"k":[{"a":"` + longVal + `"},"` + longVal + `"]}`, `{"` + long + `":[[{"a":{"b":"` + longVal + `"}}],1,"` + longVal + `"]}`,
		`{"` + strings.Repeat("\\u00e9", 60) + `":"` + strings.Repeat("\\ud83d\\ude00", 40) + `"}`,
		`{"n":` + strings.Repeat("9", 300) + `,"m":0.` + strings.Repeat("0", 300) + `1}`,
		// nesting
		deep(`[`, `]`, 100, `1`), deep(`{"a":`, `}`, 100, `[1,{"b":2}]`), deep(`[{"k":`, `}]`, 50, `"x"`),
		deep(`{"`+long+`":`, `}`, 30, `[1,2,"`+longVal+`",{"z":null}]`),
		deep(`[`, `]`, maxJSONDepth, `1`), deep(`[`, `]`, maxJSONDepth+1, `1`),
		deep(`[`, `]`, maxJSONDepth, ``), deep(`[`, `]`, maxJSONDepth+1, ``),
		deep(`{"a":`, `}`, maxJSONDepth, `1`), deep(`{"a":`, `}`, maxJSONDepth+1, `1`),
		deep(`{"a":`, `}`, maxJSONDepth-1, `{}`), deep(`{"a":`, `}`, maxJSONDepth, `{}`),
		deep(`[{"a":`, `}]`, maxJSONDepth/2, `0`), deep(`[{"a":`, `}]`, maxJSONDepth/2, `[0]`),
		deep(`[`, `]`, maxJSONDepth+1, `1`)[1:],
	}
	return cases
}()

func TestPayloadLeavesMatchesDecodeJSON(t *testing.T) {
	for _, c := range payloadLeavesCases {
		checkPayloadLeaves(t, []byte(c))
	}
	// The depth limit is encoding/json's, on both sides of it.
	for _, c := range []struct {
		doc string
		ok  bool
	}{
		{deep(`[`, `]`, maxJSONDepth, `1`), true},
		{deep(`[`, `]`, maxJSONDepth+1, `1`), false},
		{deep(`{"a":`, `}`, maxJSONDepth-1, `{}`), true},
		{deep(`{"a":`, `}`, maxJSONDepth, `{}`), false},
	} {
		if _, err := payloadLeaves([]byte(c.doc), new(leafScanner)); (err == nil) != c.ok {
			t.Errorf("%d bytes of nesting: error %v, want accepted %v", len(c.doc), err, c.ok)
		}
	}
}

// A command's events are checked first and indexed after: the leaves of
// earlier payloads must survive later ones, refused ones included.
func TestPayloadLeavesBatch(t *testing.T) {
	var s leafScanner
	for round := range 2 {
		s.reset()
		var got [][][]byte
		var docs []string
		for i, c := range payloadLeavesCases {
			if i%3 == round {
				continue
			}
			lp, err := payloadLeaves([]byte(c), &s)
			if err == nil {
				got, docs = append(got, lp), append(docs, c)
			}
		}
		for i, doc := range docs {
			want, _ := payloadLeaves([]byte(doc), new(leafScanner))
			if !slices.EqualFunc(got[i], want, bytes.Equal) {
				t.Fatalf("round %d: the leaves of %.80q changed after later payloads", round, doc)
			}
		}
	}
}

// Memory stays linear in the payload's size however it nests: the finding
// of leafPrefixes' comment (6,000 levels of long keys) and many long leaves
// under one long path.
func TestPayloadLeavesLinear(t *testing.T) {
	key98 := strings.Repeat("k", 98)
	for _, doc := range []string{
		deep(`{"`+key98+`":`, `}`, 6000, `"bottom"`),
		deep(`{"`+key98+`":`, `}`, 2000, `[`+strings.Repeat(`"`+strings.Repeat("v", 10)+`",`, 20_000)+`2]`),
		deep(`[{"`+key98+`":`, `}]`, 4000, `{"a":1,"b":2}`),
	} {
		var s leafScanner
		var lp [][]byte
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		lp, err := payloadLeaves([]byte(doc), &s)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if alloc, bound := after.TotalAlloc-before.TotalAlloc, uint64(32*len(doc)); alloc > bound {
			t.Fatalf("a %d-byte payload allocated %d bytes, want at most %d", len(doc), alloc, bound)
		}
		if want, _ := referenceLeaves([]byte(doc)); !slices.EqualFunc(lp, want, bytes.Equal) {
			t.Fatalf("%d-byte payload: leaves differ from leafPrefixes'", len(doc))
		}
	}
}

// The bench payload allocates nothing once the scanner's buffers have grown.
func TestPayloadLeavesAllocations(t *testing.T) {
	raw := []byte(`{"pad":"` + strings.Repeat("x", 170) + `","w":7}`)
	var s leafScanner
	if n := testing.AllocsPerRun(100, func() {
		s.reset()
		if _, err := payloadLeaves(raw, &s); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per payload, want 0", n)
	}
}

func FuzzPayloadLeaves(f *testing.F) {
	for _, c := range payloadLeavesCases {
		if len(c) < 4096 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkPayloadLeaves(t, raw)
	})
}

func benchPayloads() map[string][]byte {
	// About 2 KB: objects in arrays in objects, numbers, escapes, a hashed
	// leaf.
	var sb strings.Builder
	sb.WriteString(`{"order":{"id":"ord-8841","customer":{"id":42,"name":"Ann \"A.\" Lee","tags":["vip","eu"]},"lines":[`)
	for i := range 12 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"sku":"SKU-%04d","qty":%d,"price":%d.%02d,"attrs":{"color":"blue","size":"M","gift":%v}}`, i*37, i%4+1, 10+i, i*7%100, i%2 == 0)
	}
	sb.WriteString(`],"note":"` + strings.Repeat("caf\\u00e9 ", 30) + `","total":1.5e2,"paid":true,"coupon":null}}`)
	return map[string][]byte{
		"bench-200B": []byte(`{"pad":"` + strings.Repeat("x", 170) + `","w":7}`),
		"nested-2KB": []byte(sb.String()),
	}
}

func BenchmarkPayloadLeaves(b *testing.B) {
	for _, name := range []string{"bench-200B", "nested-2KB"} {
		raw := benchPayloads()[name]
		if _, err := referenceLeaves(raw); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/payloadLeaves", func(b *testing.B) {
			var s leafScanner
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for range b.N {
				s.reset()
				if _, err := payloadLeaves(raw, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/DecodeJSON+leafPrefixes", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for range b.N {
				if _, err := referenceLeaves(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
