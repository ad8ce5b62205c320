package cluster

import (
	"testing"
	"time"
)

func TestStampWindow(t *testing.T) {
	const retention = time.Hour
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		advance time.Duration // monotonic time passing before the stamp
		jump    time.Duration // wall clock jump before the stamp
	}
	steady := func(n int) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = step{advance: time.Minute}
		}
		return out
	}
	cases := []struct {
		name string
		// one stamp per step, every step after the previous one
		steps []step
		// want: ok, and the cutoff relative to the wall clock at the end
		ok   bool
		want time.Duration
	}{
		{"young leadership prunes nothing", steady(30), false, 0},
		{"steady clock: about now minus retention", steady(120), true, -retention - time.Minute},
		{"forward jump: nothing younger than retention is cut", append(steady(90), append([]step{{advance: time.Minute, jump: 3 * time.Hour}}, steady(10)...)...), true, -3*time.Hour - retention - time.Minute},
		{"backward jump: the cut-off follows the lowest stamp", append(steady(90), append([]step{{advance: time.Minute, jump: -3 * time.Hour}}, steady(10)...)...), true, -11 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mono := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			w := newStampWindow(retention, func() time.Time { return mono })
			now := wall
			var stamps []struct{ mono, wall time.Time }
			for _, s := range tc.steps {
				mono = mono.Add(s.advance)
				now = now.Add(s.advance + s.jump)
				w.observe(now)
				stamps = append(stamps, struct{ mono, wall time.Time }{mono, now})
			}
			got, ok := w.cutoff()
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			// The property that matters: every stamp used less than a
			// retention ago (monotonic) is at or above the cut-off.
			for _, s := range stamps {
				if mono.Sub(s.mono) < retention && s.wall.Before(got) {
					t.Fatalf("cut-off %v would prune a key stamped %v only %v ago", got, s.wall, mono.Sub(s.mono))
				}
			}
			if want := now.Add(tc.want); got.Sub(want).Abs() > time.Minute {
				t.Fatalf("cut-off %v, want about %v", got, want)
			}
		})
	}
}
