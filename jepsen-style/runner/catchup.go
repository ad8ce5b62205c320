package runner

import (
	"time"

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
		target := catchUpTarget(final, co.ctx)
		for co.lastHandled() < target && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
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
