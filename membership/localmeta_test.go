package membership

import "testing"

// The encoding gossiped is always the current meta with the leaving flag,
// whichever of the two changed last.
func TestLocalMeta(t *testing.T) {
	m1 := Meta{NodeID: "a", RaftAddr: "10.0.0.1:7000"}
	m2 := Meta{NodeID: "a", RaftAddr: "10.0.0.1:7000", ClusterID: "c1", HasRaftState: true}
	cases := []struct {
		name        string
		ops         func(l *localMeta) error
		wantMeta    Meta
		wantLeaving bool
	}{
		{"as started", func(*localMeta) error { return nil }, m1, false},
		{"updated", func(l *localMeta) error { return l.set(m2) }, m2, false},
		{"leaving", func(l *localMeta) error { l.markLeaving(); return nil }, m1, true},
		{"updated while leaving", func(l *localMeta) error { l.markLeaving(); return l.set(m2) }, m2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newLocalMeta(m1)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.ops(l); err != nil {
				t.Fatal(err)
			}
			if got := l.get(); got != tc.wantMeta {
				t.Fatalf("get = %+v, want %+v", got, tc.wantMeta)
			}
			meta, leaving, err := decodeMeta(l.encoded())
			if err != nil {
				t.Fatal(err)
			}
			if meta != tc.wantMeta || leaving != tc.wantLeaving {
				t.Fatalf("gossiped %+v leaving %v, want %+v leaving %v", meta, leaving, tc.wantMeta, tc.wantLeaving)
			}
		})
	}
}
