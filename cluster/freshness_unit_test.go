package cluster

import (
	"testing"
	"time"
)

func TestFreshnessStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		observeAt, observeIdx int // observeAt < 0: no probe in this step
		applied               uint64
		now                   int
		wantCluster           uint64
		wantBehind            time.Duration
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"a node that follows is behind by about a probe interval", []step{
			{0, 10, 10, 50, 10, 50 * time.Millisecond},
			{250, 12, 12, 300, 12, 50 * time.Millisecond},
		}},
		{"a node that stops applying falls behind from its last probe it had applied", []step{
			{0, 10, 10, 50, 10, 50 * time.Millisecond},
			{250, 20, 10, 300, 20, 300 * time.Millisecond},
			{500, 30, 10, 2000, 30, 2000 * time.Millisecond},
			// It catches up to the probe at 250 only: fresh as of 250.
			{-1, 0, 25, 2100, 30, 1850 * time.Millisecond},
			{-1, 0, 30, 2200, 30, 1700 * time.Millisecond},
		}},
		{"a node that learns nothing (no leader) falls behind from its start", []step{
			{-1, 0, 5, 3000, 5, 3 * time.Second},
		}},
		{"a new leader's lower commit index does not hide an older unapplied one", []step{
			{100, 50, 10, 200, 50, 200 * time.Millisecond},
			{300, 40, 45, 400, 50, 400 * time.Millisecond},
			{-1, 0, 50, 500, 50, 200 * time.Millisecond},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFreshness(t0)
			for i, s := range c.steps {
				if s.observeAt >= 0 {
					f.observe(at(s.observeAt), uint64(s.observeIdx))
				}
				cl, behind := f.status(s.applied, at(s.now))
				if cl != s.wantCluster || behind != s.wantBehind {
					t.Fatalf("step %d: cluster %d, behind %v; want %d, %v", i, cl, behind, s.wantCluster, s.wantBehind)
				}
			}
		})
	}
}

func TestFreshnessKeepsFewProbes(t *testing.T) {
	t0 := time.Now()
	f := newFreshness(t0)
	for i := range 3 * maxFreshProbes {
		f.observe(t0.Add(time.Duration(i)*time.Millisecond), uint64(100+i))
	}
	if len(f.pending) != maxFreshProbes {
		t.Fatalf("%d probes kept, want at most %d", len(f.pending), maxFreshProbes)
	}
	if _, behind := f.status(1000, t0.Add(time.Second)); behind > time.Second-time.Duration(3*maxFreshProbes-1)*time.Millisecond {
		t.Fatalf("behind %v after applying every probe; the newest probe must count", behind)
	}
}
