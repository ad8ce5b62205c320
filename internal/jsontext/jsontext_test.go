package jsontext

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// reference is what the stores decoded with before this package:
// json.Valid, then a decoder with UseNumber.
func reference(raw []byte) (any, bool) {
	if !json.Valid(raw) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// project is the reference for Project: the decoded value with the
// members of a top-level object outside keys deleted.
func project(v any, keys map[string]struct{}) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k := range obj {
		if _, keep := keys[k]; !keep {
			delete(obj, k)
		}
	}
	return obj
}

func nest(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var corpus = func() []string {
	pad := strings.Repeat("p", 300)
	return []string{
		// scalars and what is not one
		`0`, `-0`, `7`, `-7.25`, `1e9`, `1E-9`, `2.5e+3`, `123456789012345678901234567890`, `0.1e999`,
		`"x"`, `""`, `true`, `false`, `null`, "  \n\t\r null \r\n", "\u00a0null", "\vnull", `nul`, `nulls`,
		`truE`, `fals`, ``, "\n", `00`, `-`, `-a`, `1.`, `.5`, `5e`, `5e-`, `+5`, `0x10`, `Infinity`, `1 1`,
		`"a" "b"`, `1]`, `{}]`, `[1,]`, `[,]`, `'x'`,
		// strings, escapes, UTF-8
		`"\"\\\/\b\f\n\r\t"`, `"\u0000\u001f\u0020"`, `"\u00E9\u4E2D\uFFFF"`, `"\uD834\uDD1E"`, `"\uD834"`,
		`"\uDD1E"`, `"\uD834x"`, `"\uD834\u0041"`, `"\uD834\uD834\uDD1E"`, `"\uDD1E\uD834"`, `"\uD834\\"`,
		`"\uD834\"`, `"\u12"`, `"\uZZZZ"`, `"\q"`, `"\U00e9"`, `"a`, `"`, "\"\x00\"", "\"\x19\"", "\"\x7f\"",
		"\"\xfe\"", "\"\xe2\x82\xac\"", "\"\xe2\x82\"", "\"\xed\xb0\x80\"", "\"\xf0\x9f\x98\x80\"", "\"\xc1\xbf\"",
		"\"ok\xffok\"", "{\"k\xff\":1}", "{\"\\u00e9\":\"\xe9\"}",
		// containers
		`{}`, `[]`, ` { } `, ` [ ] `, `[[]]`, `{"a":{}}`, `{"a":[]}`, `[null,true,false,0,"",{},[]]`,
		`{"a":1,"b":[1,2,{"c":"d"}],"e":{"f":null}}`, `[{"a":1},{"a":1}]`, `{"":0}`,
		`{"a":1,}`, `{,"a":1}`, `{"a"1}`, `{"a":}`, `{"a"}`, `{a:1}`, `{1:1}`, `{"a":1"b":2}`, `[1 2]`,
		`{"a":1]`, `[1}`, `[`, `{`, `{"a"`, `{"a":`, `{"a":1`, `[1`, `[1,`, `]`, `}`, `{"a":[}`,
		// duplicate keys: the last wins
		`{"a":1,"a":2}`, `{"a":{"x":1},"a":{"y":2}}`, `{"a":[1],"a":"s","a":null}`, `{"\u0061":1,"a":2}`,
		`{"b":1,"a":{"a":1,"a":2},"b":3}`,
		// payloads of the kind the stores see
		`{"ctx":"c17","w":3,"pad":"` + pad + `"}`, `{"pad":"` + pad + `","ctx":"c17"}`,
		`{"order":{"id":"o-1","lines":[{"sku":"a","qty":2},{"sku":"b","qty":1.50}]},"by":"` + pad + `"}`,
		// nesting, on both sides of the limit
		nest(`[`, `]`, 64, `1`), nest(`{"k":`, `}`, 64, `[{"z":[]}]`),
		nest(`[`, `]`, MaxDepth, `0`), nest(`[`, `]`, MaxDepth+1, `0`),
		nest(`[`, `]`, MaxDepth, ``), nest(`[`, `]`, MaxDepth+1, ``),
		nest(`{"a":`, `}`, MaxDepth, `0`), nest(`{"a":`, `}`, MaxDepth+1, `0`),
		nest(`{"a":`, `}`, MaxDepth-1, `{}`), nest(`{"a":`, `}`, MaxDepth, `{}`),
		nest(`{"a":`, `}`, MaxDepth-1, `[]`), nest(`{"a":`, `}`, MaxDepth, `[]`),
		`{"skip":` + nest(`[`, `]`, MaxDepth, `0`) + `,"keep":1}`,
		`{"skip":` + nest(`[`, `]`, MaxDepth-1, `0`) + `,"keep":1}`,
		nest(`[`, `]`, MaxDepth+1, `0`)[1:],
	}
}()

var projections = []map[string]struct{}{
	{}, {"a": {}}, {"ctx": {}}, {"keep": {}, "skip": {}}, {"order": {}, "k": {}, "\u00e9": {}, "k\ufffd": {}},
}

func check(t testing.TB, raw []byte) {
	t.Helper()
	want, wantOK := reference(raw)
	if got := Valid(raw); got != wantOK {
		t.Fatalf("Valid(%.80q) = %v, json.Valid says %v", raw, got, wantOK)
	}
	got, err := Decode(raw)
	if (err == nil) != wantOK {
		t.Fatalf("Decode(%.80q): error %v, encoding/json accepts it: %v", raw, err, wantOK)
	}
	if wantOK && !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%.80q) = %#v, encoding/json gives %#v", raw, got, want)
	}
	for _, keys := range projections {
		got, err := Project(raw, keys)
		if (err == nil) != wantOK {
			t.Fatalf("Project(%.80q, %v): error %v, encoding/json accepts it: %v", raw, keys, err, wantOK)
		}
		if !wantOK {
			continue
		}
		want, _ := reference(raw) // project deletes from it
		if want := project(want, keys); !reflect.DeepEqual(got, want) {
			t.Fatalf("Project(%.80q, %v) = %#v, want %#v", raw, keys, got, want)
		}
	}
}

func TestMatchesEncodingJSON(t *testing.T) {
	for _, c := range corpus {
		check(t, []byte(c))
	}
}

// The limit is encoding/json's on either side, whether a deep value is
// decoded or skipped by a projection.
func TestDepthLimit(t *testing.T) {
	for _, c := range []struct {
		doc string
		ok  bool
	}{
		{nest(`[`, `]`, MaxDepth, `1`), true},
		{nest(`[`, `]`, MaxDepth+1, `1`), false},
		{nest(`{"a":`, `}`, MaxDepth-1, `{}`), true},
		{nest(`{"a":`, `}`, MaxDepth, `{}`), false},
		{`{"x":` + nest(`[`, `]`, MaxDepth-1, `1`) + `}`, true},
		{`{"x":` + nest(`[`, `]`, MaxDepth, `1`) + `}`, false},
	} {
		_, derr := Decode([]byte(c.doc))
		_, perr := Project([]byte(c.doc), map[string]struct{}{})
		if Valid([]byte(c.doc)) != c.ok || (derr == nil) != c.ok || (perr == nil) != c.ok {
			t.Errorf("%d bytes of nesting: Valid %v, Decode %v, Project %v; want accepted %v",
				len(c.doc), Valid([]byte(c.doc)), derr, perr, c.ok)
		}
	}
}

// A projection that leaves members out does not allocate them: the point
// of Project.
func TestProjectAllocations(t *testing.T) {
	raw := []byte(`{"pad":"` + strings.Repeat("p", 4000) + `","list":[1,2,3,{"a":"b"}],"ctx":"c1"}`)
	keys := map[string]struct{}{"ctx": {}}
	// the map and its first group, the key buffer, the key, the value and
	// its interface box; nothing of the 4 KB member or the list
	if n := testing.AllocsPerRun(100, func() { _, _ = Project(raw, keys) }); n > 6 {
		t.Errorf("Project allocates %v times, want at most 6", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Valid(raw) }); n != 0 {
		t.Errorf("Valid allocates %v times, want 0", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range corpus {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) { check(t, raw) })
}

func BenchmarkDecode(b *testing.B) {
	raw := []byte(`{"ctx":"c17","w":3,"pad":"` + strings.Repeat("p", 170) + `"}`)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = reference(raw)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = Decode(raw)
		}
	})
	keys := map[string]struct{}{"ctx": {}}
	b.Run("Project", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = Project(raw, keys)
		}
	})
}
