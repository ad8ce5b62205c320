package runner

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

func TestClockFile(t *testing.T) {
	if got := clockFile(3); got != "/tmp/factstr-jepsen/data/n3.clock-offset" {
		t.Fatalf("clockFile(3) = %s", got)
	}
}

// TestWriteClockOffset writes the offsets the clock nemeses use and reads
// them back as the node does (cmd/factstr-node parseClockOffset: trim,
// then time.ParseDuration).
func TestWriteClockOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n1.clock-offset")
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Minute, "+10m0s\n"},
		{-10 * time.Minute, "-10m0s\n"},
		{5 * time.Minute, "+5m0s\n"},
		{-5 * time.Minute, "-5m0s\n"},
		{0, "0s\n"},
		{1500 * time.Millisecond, "+1.5s\n"},
	} {
		if err := writeClockOffset(path, tc.d); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("offset %v written as %q, want %q", tc.d, b, tc.want)
		}
		back, err := time.ParseDuration(strings.TrimSpace(string(b)))
		if err != nil || back != tc.d {
			t.Errorf("offset %v reads back as %v, %v", tc.d, back, err)
		}
	}
	// Atomic replacement leaves no temporary file beside the offset.
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only the offset file", names)
	}
}

func TestWithOccurredAt(t *testing.T) {
	at := time.Unix(100, 5)
	for _, tc := range []struct {
		name string
		evs  []history.Event
		recs []contract.EventRecord
		want []int64
	}{
		{"stamped", []history.Event{{Seq: 1}, {Seq: 2}}, []contract.EventRecord{{OccurredAt: at}, {OccurredAt: at.Add(time.Second)}}, []int64{100e9 + 5, 101e9 + 5}},
		{"zero stays unset", []history.Event{{Seq: 1}}, []contract.EventRecord{{}}, []int64{0}},
		{"fewer records than events", []history.Event{{Seq: 1}, {Seq: 2}}, []contract.EventRecord{{OccurredAt: at}}, []int64{100e9 + 5, 0}},
		{"none", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			for _, e := range withOccurredAt(tc.evs, tc.recs) {
				got = append(got, e.At)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("At = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCatchUpTarget(t *testing.T) {
	final := func(node string, evs ...history.Event) history.Entry {
		return history.Entry{F: history.FFinalRead, Type: history.OK, Node: node, Value: &history.Value{Events: evs}}
	}
	e := func(seq uint64, ctx string) history.Event { return history.Event{Seq: seq, Ctx: ctx} }
	entries := []history.Entry{
		{F: history.FQuery, Type: history.OK, Value: &history.Value{Events: []history.Event{e(1, "c0"), e(2, "c0"), e(3, "c0"), e(4, "c0"), e(5, "c0")}}},
		final("n1", e(1, "c0"), e(2, "c1")),
		{F: history.FFinalRead, Type: history.Fail, Node: "n2"},
		{F: history.FFinalRead, Type: history.Invoke, Node: "n2", Value: &history.Value{MinApplied: 9, Events: []history.Event{e(1, "c0"), e(2, "c0"), e(3, "c0"), e(4, "c0")}}},
		final("n3", e(1, "c0"), e(2, "c1"), e(3, "c0"), e(4, "barrier")),
		final("n4", e(1, "c0"), e(2, "c1"), e(3, "c0")),             // shorter: not the reference
		final("n5", e(1, "c0"), e(2, "c1"), e(3, "c0"), e(4, "c1")), // as long: the first stays
	}
	got := longestFinalRead(entries)
	if len(got) != 4 || got[3].Ctx != "barrier" {
		t.Fatalf("longest final read %v, want n3's four events", got)
	}
	for _, tc := range []struct {
		ctx  string
		want uint64
	}{
		{"", 4}, {"c0", 3}, {"c1", 2}, {"c9", 0},
	} {
		if got := catchUpTarget(got, tc.ctx); got != tc.want {
			t.Errorf("catchUpTarget(%q) = %d, want %d", tc.ctx, got, tc.want)
		}
	}
	if got := longestFinalRead(nil); got != nil {
		t.Errorf("no final reads: %v", got)
	}
}
