package streams

import (
	"errors"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Every write of a lease runs under a live ctx with a deadline, though the
// subscription's ctx is already cancelled (an Unsubscribe from inside the
// handler must still store that handler's nil).
func TestLeaseWritesOutliveTheSubscriptionCtx(t *testing.T) {
	writes := []struct {
		name  string
		write func(*durableLease) error
	}{
		{"advance", func(l *durableLease) error { return l.advance(4) }},
		{"park", func(l *durableLease) error { return l.park(Parking{Seqs: []uint64{4}}) }},
		{"unpark", func(l *durableLease) error { return l.unpark([]uint64{4}) }},
		{"release", func(l *durableLease) error { l.release(); return nil }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			d := &fakeDurables{}
			if err := w.write(testLease(d, nil)); err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.deadWrite {
				t.Fatalf("%s ran under a ctx that was done or unbounded", w.name)
			}
			if n := len(d.advances) + len(d.parks) + len(d.unparks) + d.releases; n != 1 {
				t.Fatalf("%s made %d store calls, want 1", w.name, n)
			}
		})
	}
}

// A failed advance says which cursor it was, and keeps the store's error
// for errors.Is (a lost lease ends the stream with it).
func TestLeaseAdvanceWrapsError(t *testing.T) {
	d := &fakeDurables{advanceErr: contract.ErrDurableLeaseLost}
	err := testLease(d, nil).advance(9)
	if !errors.Is(err, contract.ErrDurableLeaseLost) {
		t.Fatalf("advance: %v, want it to wrap ErrDurableLeaseLost", err)
	}
}

// A release that fails is retried in the background until it goes
// through; the engine's close ends the retries.
func TestLeaseReleaseRetries(t *testing.T) {
	t.Run("until it goes through", func(t *testing.T) {
		d := &fakeDurables{releaseFails: 1}
		testLease(d, make(chan struct{})).release()
		deadline := time.Now().Add(10 * time.Second)
		for {
			d.mu.Lock()
			n := d.releases
			d.mu.Unlock()
			if n == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d release calls after a failed one, want 2", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("until the engine closes", func(t *testing.T) {
		d := &fakeDurables{releaseFails: 1000}
		closed := make(chan struct{})
		close(closed)
		testLease(d, closed).release()
		time.Sleep(700 * time.Millisecond) // past the first retry's backoff (500ms)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.releases != 1 {
			t.Fatalf("%d release calls with the engine closed, want 1 (no retry)", d.releases)
		}
	})
}
