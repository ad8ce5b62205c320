package cluster

import (
	"bytes"
	"testing"
)

func TestCommitWatch(t *testing.T) {
	type entry struct {
		data  []byte
		freed int
		w     *watchedEntry
	}
	newEntries := func(w *commitWatch, n int) []*entry {
		es := make([]*entry, n)
		for i := range es {
			e := &entry{data: []byte{1, byte(i)}}
			e.w = w.add(e.data, func() { e.freed++ })
			es[i] = e
		}
		return es
	}
	freed := func(es []*entry) []int {
		out := make([]int, len(es))
		for i, e := range es {
			out[i] = e.freed
		}
		return out
	}
	same := func(a, b []int) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}

	for _, tc := range []struct {
		name string
		run  func(w *commitWatch, es []*entry)
		want []int // times each entry's slot was freed
	}{
		{"nothing committed", func(*commitWatch, []*entry) {}, []int{0, 0, 0}},
		{"the first commits", func(w *commitWatch, es []*entry) { w.committed(es[0].data) }, []int{1, 0, 0}},
		{"a later one commits: the earlier ones are done too", func(w *commitWatch, es []*entry) { w.committed(es[1].data) }, []int{1, 1, 0}},
		{"equal bytes elsewhere are not the entry", func(w *commitWatch, es []*entry) { w.committed(bytes.Clone(es[0].data)) }, []int{0, 0, 0}},
		{"an entry the watch never saw", func(w *commitWatch, _ []*entry) { w.committed([]byte{9}) }, []int{0, 0, 0}},
		{"empty data", func(w *commitWatch, _ []*entry) { w.committed(nil) }, []int{0, 0, 0}},
		{"answered without a commit", func(w *commitWatch, es []*entry) { w.answered(es[1].w) }, []int{0, 1, 0}},
		{"committed, then answered: freed once", func(w *commitWatch, es []*entry) {
			w.committed(es[0].data)
			w.answered(es[0].w)
			w.committed(es[0].data)
		}, []int{1, 0, 0}},
		{"answered, then its bytes committed later", func(w *commitWatch, es []*entry) {
			w.answered(es[2].w)
			w.committed(es[2].data) // no longer watched: frees nothing more
		}, []int{0, 0, 1}},
		{"every one in turn", func(w *commitWatch, es []*entry) {
			for _, e := range es {
				w.committed(e.data)
				w.answered(e.w)
			}
		}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := new(commitWatch)
			es := newEntries(w, 3)
			tc.run(w, es)
			if got := freed(es); !same(got, tc.want) {
				t.Fatalf("slots freed %v, want %v", got, tc.want)
			}
			for _, e := range es {
				w.answered(e.w)
			}
			if got := freed(es); !same(got, []int{1, 1, 1}) {
				t.Fatalf("after every answer: slots freed %v, want each once", got)
			}
			if len(w.pending) != 0 {
				t.Fatalf("%d entries still watched after every answer", len(w.pending))
			}
		})
	}
}
