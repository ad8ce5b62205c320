package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerNeverReusesAnEarlierRound: every caller's index comes from a
// round that started after the caller asked (a read index taken before a
// read began would not make the read linearizable), rounds are shared, and
// no more than maxRounds run at once.
func TestCoalescerNeverReusesAnEarlierRound(t *testing.T) {
	var (
		started  atomic.Uint64 // rounds started; a round returns its number
		running  atomic.Int64
		maxSeen  atomic.Int64
		rounds   atomic.Uint64
		startsMu sync.Mutex
	)
	c := newCoalescer(func(ctx context.Context) (uint64, error) {
		startsMu.Lock()
		n := started.Add(1)
		startsMu.Unlock()
		r := running.Add(1)
		for {
			m := maxSeen.Load()
			if r <= m || maxSeen.CompareAndSwap(m, r) {
				break
			}
		}
		time.Sleep(time.Millisecond) // a round takes a network round trip
		running.Add(-1)
		rounds.Add(1)
		return n, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	const callers, each = 32, 50
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				startsMu.Lock()
				before := started.Load() // rounds started before this call
				startsMu.Unlock()
				idx, err := c.do(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if idx <= before {
					t.Errorf("got round %d, which started before the call (%d rounds had started)", idx, before)
					return
				}
			}
		}()
	}
	wg.Wait()
	if m := maxSeen.Load(); m > readIndexRounds {
		t.Fatalf("%d rounds ran at once, the bound is %d", m, readIndexRounds)
	}
	if r := rounds.Load(); r >= callers*each {
		t.Fatalf("%d rounds for %d reads: nothing was shared", r, callers*each)
	}
}
