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
	var final []history.Event
	for _, e := range c.rec.Entries() {
		if e.F == history.FFinalRead && e.Type == history.OK && e.Value != nil && len(e.Value.Events) > len(final) {
			final = e.Value.Events
		}
	}
	for _, co := range cons {
		var target uint64
		for _, ev := range final {
			if (co.ctx == "" || ev.Ctx == co.ctx) && ev.Seq > target {
				target = ev.Seq
			}
		}
		for co.lastHandled() < target && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
}
