package runner

import (
	"context"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// waitConsumers gives the durable consumers one second, then waits (until
// deadline) until each has handled the last fact it matches in the final
// log. A consumer pinned to a node that a fault restarted at the very end
// (kill, power loss) may still be in its client's reconnect backoff when
// the consumer 'all' has caught up.
func (c *cluster) waitConsumers(cons []*consumer, deadline time.Time) {
	time.Sleep(time.Second)
	final := longestFinalRead(c.rec.Entries())
	for _, co := range cons {
		for !co.caughtUp(final) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// caughtUp reports whether the consumer has passed everything of final it
// matches: a group member, when the group has handled all of it; any
// other, when it handled (or parked) the last fact it matches.
func (co *consumer) caughtUp(final []history.Event) bool {
	if co.shared != nil {
		var seqs []uint64
		for _, ev := range final {
			seqs = append(seqs, ev.Seq)
		}
		return co.shared.all(seqs)
	}
	return co.lastHandled() >= catchUpTarget(final, co.ctx)
}

// readParked records the parking consumer's parked list after healing
// (history.FParked), for the parking checker.
func (c *cluster) readParked(ctx context.Context, co *consumer) {
	proc := c.rec.NewProcess()
	op := c.rec.Invoke(proc, co.worker(), "", history.FParked, &history.Value{Name: co.name})
	var evs []history.Event
	var after uint64
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		page, err := co.cl.ListParked(rctx, co.name, after, contract.MaxParkedPage)
		cancel()
		if err != nil {
			c.rec.Complete(op, proc, co.worker(), "", history.FParked, history.Fail, nil, err)
			c.note("reading the parked list of %q failed: %v", co.name, err)
			return
		}
		for _, p := range page {
			evs = append(evs, toEvents([]contract.EventRecord{p.Event})...)
			after = p.Event.SequenceNumber
		}
		if len(page) < contract.MaxParkedPage {
			break
		}
	}
	c.rec.Complete(op, proc, co.worker(), "", history.FParked, history.OK, &history.Value{Events: evs}, nil)
	c.note("consumer %q parked %d events", co.name, len(evs))
}

// longestFinalRead is the longest log a successful final read returned.
func longestFinalRead(entries []history.Entry) []history.Event {
	var final []history.Event
	for _, e := range entries {
		if e.F == history.FFinalRead && e.Type == history.OK && e.Value != nil && len(e.Value.Events) > len(final) {
			final = e.Value.Events
		}
	}
	return final
}

// catchUpTarget is the last seq in final that a consumer of ctx ("" for
// every event) must handle.
func catchUpTarget(final []history.Event, ctx string) uint64 {
	var target uint64
	for _, ev := range final {
		if (ctx == "" || ev.Ctx == ctx) && ev.Seq > target {
			target = ev.Seq
		}
	}
	return target
}
