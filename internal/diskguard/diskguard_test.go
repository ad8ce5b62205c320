package diskguard_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/diskguard"
)

func TestGuard(t *testing.T) {
	var free atomic.Uint64
	var queries atomic.Int64
	clock := time.Unix(0, 0)
	g := diskguard.New(t.TempDir(), 1000, nil,
		diskguard.WithFreeFunc(func(string) (uint64, error) { queries.Add(1); return free.Load(), nil }),
		diskguard.WithClock(func() time.Time { return clock }))
	steps := []struct {
		name    string
		free    uint64
		advance time.Duration
		noSpace bool
	}{
		{"plenty", 5000, 0, false},
		{"just at the watermark", 1000, time.Second, false},
		{"below", 999, time.Second, true},
		{"cached within the recheck interval", 5000, time.Millisecond, true},
		{"space returned", 5000, time.Second, false},
		{"empty disk", 0, time.Second, true},
	}
	for _, s := range steps {
		free.Store(s.free)
		clock = clock.Add(s.advance)
		err := g.Check()
		if errors.Is(err, diskguard.ErrNoSpace) != s.noSpace || (err != nil && !errors.Is(err, diskguard.ErrNoSpace)) {
			t.Fatalf("%s: Check = %v, want no space %v", s.name, err, s.noSpace)
		}
		if g.Low() != s.noSpace {
			t.Fatalf("%s: Low = %v", s.name, g.Low())
		}
	}
	if q := queries.Load(); q != int64(len(steps)-1) {
		t.Fatalf("%d file system queries, want %d (one step was cached)", q, len(steps)-1)
	}
}

func TestGuardOffAndUnknown(t *testing.T) {
	off := diskguard.New(t.TempDir(), 0, nil, diskguard.WithFreeFunc(func(string) (uint64, error) { return 0, nil }))
	if err := off.Check(); err != nil {
		t.Fatalf("a zero watermark refused: %v", err)
	}
	unknown := diskguard.New(t.TempDir(), 1, nil, diskguard.WithFreeFunc(func(string) (uint64, error) { return 0, errors.New("statfs failed") }))
	if err := unknown.Check(); err != nil {
		t.Fatalf("an unknown free space refused: %v", err)
	}
	var nilGuard *diskguard.Guard
	if err := nilGuard.Check(); err != nil {
		t.Fatal(err)
	}
	real := diskguard.New(t.TempDir(), 1, nil)
	if err := real.Check(); err != nil {
		t.Fatalf("the test machine's disk is full? %v", err)
	}
}
