package streams

import (
	"context"
	"errors"
	"testing"
	"time"
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
	h.Publish(4)
	select {
	case got := <-woke:
		t.Fatalf("woke at head %d, waiting for 5", got)
	default:
	}
	h.Publish(2) // lower heads are ignored
	if h.Head() != 4 {
		t.Fatalf("head %d after publishing a lower one, want 4", h.Head())
	}
	h.Publish(6)
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
