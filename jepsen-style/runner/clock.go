package runner

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/fsutil"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Clock nemeses. Every node runs with --debug-clock-offset-file
// StateDir/data/n<i>.clock-offset (absent: no offset) and re-reads it every
// 50 ms; the offset moves only cluster.Config.Clock. What that clock may
// legitimately change:
//   - OccurredAt, stamped by the leader into each proposed batch: it may jump
//     or run backwards between batches, but every node must store the same
//     value for an event (the agreement checker compares it) and it is never
//     zero;
//   - the idempotency-key pruning cut-off (cluster/reconcile.go: leader
//     clock − IdempotencyRetention, 1 h by default), so a forward jump of
//     more than the retention would forget keys early. The offsets here
//     (±10 min, ±5 min) stay far below it, so no retried append may
//     duplicate.
//
// Raft's timers and leases use the monotonic clock, which the offset does
// not touch: safety must not depend on the injected clock at all.

func clockFile(i int) string {
	return filepath.Join(StateDir, "data", fmt.Sprintf("n%d.clock-offset", i))
}

// setClockOffset writes node i's offset atomically: the node rereads the
// file at any time and must never see it half written.
func setClockOffset(i int, d time.Duration) error { return writeClockOffset(clockFile(i), d) }

// writeClockOffset writes d to path in the form the node parses (a Go
// duration, signed when positive, one line).
func writeClockOffset(path string, d time.Duration) error {
	s := d.String()
	if d > 0 {
		s = "+" + s
	}
	return fsutil.WriteFile(path, []byte(s+"\n"), 0o644)
}

func (c *cluster) resetClocks(nodes map[int]bool) {
	for i := range nodes {
		if err := setClockOffset(i, 0); err != nil {
			c.note("reset clock of n%d: %v", i, err)
		}
	}
}

// clockBump moves the leader's clock 10 minutes forward or back.
func (c *cluster) clockBump(ctx context.Context, rng *rand.Rand) (*fault, error) {
	l := c.pickLeader(ctx, rng)
	d := 10 * time.Minute
	if rng.Intn(2) == 0 {
		d = -d
	}
	f := &fault{desc: fmt.Sprintf("clock bump: leader n%d's clock %+v", l, d), heal: func(context.Context) {
		c.resetClocks(map[int]bool{l: true})
	}}
	return f, setClockOffset(l, d)
}

// clockStrobe flips the leader's clock between −5 and +5 minutes every
// 100 ms; it follows the leadership (checked every second) and resets the
// nodes it left.
func (c *cluster) clockStrobe(ctx context.Context, rng *rand.Rand) (*fault, error) {
	l := c.pickLeader(ctx, rng)
	const d = 5 * time.Minute
	if err := setClockOffset(l, d); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	touched := map[int]bool{l: true}
	flips := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		cur, sign := l, 1
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		lastCheck := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if time.Since(lastCheck) >= time.Second {
				lastCheck = time.Now()
				if nl := c.leader(ctx); nl > 0 && nl != cur {
					if err := setClockOffset(cur, 0); err != nil {
						c.note("clock strobe: reset n%d: %v", cur, err)
					}
					c.note("clock strobe: leadership moved n%d -> n%d; strobing n%d", cur, nl, nl)
					cur = nl
					touched[cur] = true
				}
			}
			sign = -sign
			if err := setClockOffset(cur, time.Duration(sign)*d); err != nil {
				c.note("clock strobe n%d: %v", cur, err)
				continue
			}
			flips++
		}
	}()
	f := &fault{desc: fmt.Sprintf("clock strobe: leader n%d's clock flips between -%v and +%v every 100ms", l, d, d), heal: func(context.Context) {
		close(stop)
		wg.Wait()
		c.resetClocks(touched)
		c.note("clock strobe: %d flips", flips)
	}}
	return f, nil
}

// withOccurredAt copies each record's OccurredAt into evs (final reads, so
// the agreement checker can compare the stamps across nodes).
func withOccurredAt(evs []history.Event, recs []contract.EventRecord) []history.Event {
	for i := range evs {
		if i < len(recs) && !recs[i].OccurredAt.IsZero() {
			evs[i].At = recs[i].OccurredAt.UnixNano()
		}
	}
	return evs
}
