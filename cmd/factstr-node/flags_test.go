package main

import (
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func TestFilterFlag(t *testing.T) {
	pred := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tc := range []struct {
		in      string
		want    contract.EventFilter
		wantErr string
	}{
		{in: `{}`, want: contract.EventFilter{}},
		{in: `{"types":["a","b"]}`, want: contract.EventFilter{EventTypes: []string{"a", "b"}}},
		{in: `{"types":[]}`, want: contract.EventFilter{EventTypes: []string{}}},
		{in: `{"where":{"k":1}}`, want: contract.EventFilter{PayloadPredicates: []json.RawMessage{pred(`{"k":1}`)}}},
		{in: `{"where":[{"k":1},{"k":2}]}`, want: contract.EventFilter{PayloadPredicates: []json.RawMessage{pred(`{"k":1}`), pred(`{"k":2}`)}}},
		{in: `{"where":[]}`, want: contract.EventFilter{PayloadPredicates: []json.RawMessage{}}},
		{in: `{"where":null}`, want: contract.EventFilter{}},
		{in: `{"types":["a"],"where":{"k":{"n":[1]}}}`, want: contract.EventFilter{EventTypes: []string{"a"}, PayloadPredicates: []json.RawMessage{pred(`{"k":{"n":[1]}}`)}}},
		{in: `{"where":[1]}`, wantErr: "JSON object"},
		{in: `{"where":"x"}`, wantErr: "JSON object"},
		{in: `{"types":"a"}`, wantErr: "want {"},
		{in: `{"types":[""]}`, wantErr: "empty type"},
		{in: `{"typo":[]}`, wantErr: `unknown field "typo"`},
		{in: `{} {}`, wantErr: "one JSON object"},
		{in: `[]`, wantErr: "want {"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var l filterList
			err := l.Set(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Set(%s): %v; want an error containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%s): %v", tc.in, err)
			}
			got := l[0]
			// nil and empty differ in meaning: any vs nothing.
			if (got.EventTypes == nil) != (tc.want.EventTypes == nil) || (got.PayloadPredicates == nil) != (tc.want.PayloadPredicates == nil) {
				t.Fatalf("Set(%s) = %#v; want %#v (nil versus empty lists)", tc.in, got, tc.want)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if string(gj) != string(wj) {
				t.Fatalf("Set(%s) = %s; want %s", tc.in, gj, wj)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"-1", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"+3", 0, false},
		{"x", 0, false},
		{"", 0, false},
	} {
		var v versionFlag
		err := v.Set(tc.in)
		if tc.ok != (err == nil) || (tc.ok && (!v.set || v.v != tc.want)) {
			t.Errorf("Set(%q) = %+v, %v; want %d, ok %v", tc.in, v, err, tc.want, tc.ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := newFlagSet("query", "query [flags]")
		fs.String("addr", "", "")
		fs.String("type", "", "")
		fs.Duration("timeout", 0, "")
		fs.Var(&objectList{}, "where", "")
		return fs
	}
	for _, tc := range []struct {
		args []string
		want string // "": no error; "help": errHelp
	}{
		{[]string{"--type", "x", "pos"}, ""},
		{[]string{"--help"}, "help"},
		{[]string{"-h"}, "help"},
		{[]string{"--adr", "x"}, "unknown flag --adr; did you mean --addr?"},
		{[]string{"--tpye", "x"}, "unknown flag --tpye; did you mean --type?"},
		{[]string{"--zzzzzz"}, "unknown flag --zzzzzz ("},
		{[]string{"--timeout", "x"}, `invalid value "x" for flag --timeout`},
		{[]string{"--type"}, "flag needs an argument: --type"},
		{[]string{"--where", "[1]"}, "want a JSON object"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := parse(newFS(), tc.args)
			var ue *usageError
			switch {
			case tc.want == "":
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
			case tc.want == "help":
				if !errors.Is(err, errHelp) {
					t.Fatalf("parse: %v; want errHelp", err)
				}
			case !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("parse: %v; want one usage line containing %q", err, tc.want)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	names := []string{"addr", "type", "timeout", "if-version", "idempotency-key", "members", "transfer-leadership"}
	for _, tc := range []struct{ in, want string }{
		{"adr", "addr"},
		{"tpye", "type"},
		{"timout", "timeout"},
		{"if-versoin", "if-version"},
		{"membrs", "members"},
		{"transfer", "transfer-leadership"},
		{"zzzzzz", ""},
		{"x", ""},
	} {
		if got := closest(tc.in, names); got != tc.want {
			t.Errorf("closest(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
