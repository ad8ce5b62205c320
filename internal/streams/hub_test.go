package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func TestHubWait(t *testing.T) {
	h := NewHub(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A head already past the position answers at once.
	if got, err := h.Wait(ctx, 2); err != nil || got != 3 {
		t.Fatalf("Wait(2) on head 3 = %d, %v", got, err)
	}
	if got, err := h.WaitAtLeast(ctx, 0); err != nil || got != 3 {
		t.Fatalf("WaitAtLeast(0) = %d, %v", got, err)
	}

	// A waiter wakes on the publication that passes it, not before.
	woke := make(chan uint64, 1)
	go func() {
		got, err := h.WaitAtLeast(ctx, 5)
		if err != nil {
			t.Error(err)
		}
		woke <- got
	}()
	h.Publish(4, nil)
	select {
	case got := <-woke:
		t.Fatalf("woke at head %d, waiting for 5", got)
	default:
	}
	h.Publish(2, nil) // lower heads are ignored
	if h.Head() != 4 {
		t.Fatalf("head %d after publishing a lower one, want 4", h.Head())
	}
	h.Publish(6, nil)
	if got := <-woke; got != 6 {
		t.Fatalf("woke at %d, want 6", got)
	}

	// Reset moves the head down (a restore); Close ends every wait for good.
	h.Reset(1)
	if h.Head() != 1 {
		t.Fatalf("head %d after Reset(1)", h.Head())
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.Wait(ctx, 10)
		done <- err
	}()
	h.Close()
	if err := <-done; !errors.Is(err, errHubClosed) {
		t.Fatalf("Wait after Close: %v, want errHubClosed", err)
	}
	if _, err := h.Wait(ctx, 10); !errors.Is(err, errHubClosed) {
		t.Fatalf("Wait on a closed hub: %v", err)
	}

	// A cancelled context ends a wait with its error.
	h2 := NewHub(0)
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := h2.Wait(cctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx: %v", err)
	}
}

func TestBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// No limit: every want is granted in full, and counted.
	free := newBudget(0)
	if g, err := free.acquire(ctx, 10<<20); err != nil || g != 10<<20 || free.held() != 10<<20 {
		t.Fatalf("unbounded acquire = %d, %v (held %d)", g, err, free.held())
	}

	b := newBudget(1 << 20)
	if g, err := b.acquire(ctx, 4<<20); err != nil || g != 1<<20 {
		t.Fatalf("acquire past the limit = %d, %v; want the whole limit", g, err)
	}
	// The limit is held (by subscriptions whose clients read nothing): the
	// next reader still gets a minimum grant at once, never waits for
	// bytes that may never come back, and a small want gets only itself.
	if g, err := b.acquire(ctx, 1<<20); err != nil || g != minGrant {
		t.Fatalf("acquire with nothing free = %d, %v; want the minimum grant %d", g, err, minGrant)
	}
	if g, err := b.acquire(ctx, 100); err != nil || g != 100 {
		t.Fatalf("small acquire with nothing free = %d, %v; want 100", g, err)
	}
	if b.held() != 1<<20+minGrant+100 {
		t.Fatalf("held %d, want %d", b.held(), 1<<20+minGrant+100)
	}
	// Released bytes are granted again, up to what is free.
	b.add(-(1 << 20))
	if g, _ := b.acquire(ctx, 4<<20); g != 1<<20-minGrant-100 {
		t.Fatalf("acquire after a release = %d, want %d", g, 1<<20-minGrant-100)
	}
	// A caller whose ctx ended gets its cause.
	cctx, ccancel := context.WithCancelCause(ctx)
	errStop := errors.New("stop")
	ccancel(errStop)
	if _, err := b.acquire(cctx, 1); !errors.Is(err, errStop) {
		t.Fatalf("acquire with a cancelled ctx: %v", err)
	}
}

// TestHubRecentCoverage: the hub answers only for ranges it keeps whole:
// a publication without its batches, a gap, a reset or eviction past the
// byte bound make it send the reader to the store (ok false), never answer
// with a hole.
func TestHubRecentCoverage(t *testing.T) {
	all, err := contract.NewMatcher(contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(seqs ...uint64) []contract.EventRecord {
		out := make([]contract.EventRecord, len(seqs))
		for i, s := range seqs {
			out[i] = contract.EventRecord{SequenceNumber: s, Type: "t", Payload: []byte(`{}`)}
		}
		return out
	}
	covered := func(h *Hub, after, upTo uint64) bool {
		_, _, ok := h.Recent(after, upTo, all, 100, 0)
		return ok
	}
	h := NewHub(0)
	h.Publish(2, [][]contract.EventRecord{rec(1, 2)})
	h.Publish(3, [][]contract.EventRecord{rec(3)})
	if !covered(h, 0, 3) || !covered(h, 2, 3) {
		t.Fatal("the hub does not keep what was published with its batches")
	}
	got, scanned, _ := h.Recent(1, 3, all, 100, 0)
	if len(got) != 2 || got[0][0].SequenceNumber != 2 || len(got[0]) != 1 || scanned != 3 {
		t.Fatalf("Recent(1, 3) = %v scanned %d, want [[2] [3]] scanned 3 (a start inside a batch delivers its rest)", got, scanned)
	}
	got[0][0].Payload[0] = 'X' // a reader's copy is its own
	if again, _, _ := h.Recent(1, 3, all, 100, 0); string(again[0][0].Payload) != `{}` {
		t.Fatal("a reader's change of its records reached the hub's")
	}
	if covered(h, 0, 4) {
		t.Fatal("the hub answered for a range past its head")
	}

	h.Publish(5, nil) // published without its batches
	if covered(h, 3, 5) || covered(h, 0, 5) {
		t.Fatal("the hub answered for batches it was not given")
	}
	h.Publish(6, [][]contract.EventRecord{rec(6)})
	if !covered(h, 5, 6) || covered(h, 4, 6) {
		t.Fatal("after a publication without batches the hub must keep exactly what came after it")
	}
	h.Publish(8, [][]contract.EventRecord{rec(8)}) // 7 is missing
	if covered(h, 6, 8) || covered(h, 7, 8) || !covered(h, 8, 8) {
		t.Fatal("the hub kept a batch that does not follow its head")
	}

	h.Reset(2)
	if covered(h, 0, 2) {
		t.Fatal("the hub kept batches across a reset")
	}

	// Eviction: past RecentBytes the oldest batches go, and ranges that
	// reach into them go to the store.
	h = NewHub(0)
	payload := make([]byte, 64<<10)
	for i := range payload {
		payload[i] = 'x'
	}
	n := uint64(2 * RecentBytes / len(payload))
	for seq := uint64(1); seq <= n; seq++ {
		h.Publish(seq, [][]contract.EventRecord{{{SequenceNumber: seq, Type: "t", Payload: payload}}})
	}
	if covered(h, 0, n) {
		t.Fatalf("the hub kept %d batches of 64 KiB, beyond its %d-byte bound", n, RecentBytes)
	}
	if !covered(h, n-1, n) || !covered(h, n/2+8, n) {
		t.Fatal("the hub evicted recent batches within its bound")
	}
}
