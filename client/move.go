package client

import (
	"context"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// durableMoveTimeout bounds how long a durable stream that is moving off a
// node that fell behind waits for that node to store the cursor and free
// the name (it goes through the Raft leader). Past it the stream is cut,
// and resumes from the stored cursor as after a node failure; batches
// acknowledged since that cursor was stored come again.
const durableMoveTimeout = 15 * time.Second

// moveState is a stream's move off a node that fell behind.
type moveState struct {
	// avoid is 1 + the node a resumed stream must not start with (0: any).
	avoid  int
	moving bool // durable: Unsubscribe sent, waiting for Released
	// moved: durable: resuming after a move; the name may still be held
	// by the node moved off, which is waited for without a time limit.
	moved bool
	timer *time.Timer // durable: cuts the stream if Released does not come
	// progressSeen: the current stream's node sends progress, so its
	// silence means something (see awaitMessage).
	progressSeen bool
	silence      *time.Timer
}

// end forgets a durable move (it ended, or the stream broke first).
func (m *moveState) end() {
	m.moving = false
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
}

// progressIntervalMs is how often a stream asks its node how far behind it
// is: a few times per WithMaxStreamLag bound, at least every second and at
// most every 100 ms. 0 when streams are not moved.
func (c *Client) progressIntervalMs() uint32 {
	if c.opts.maxStreamLag <= 0 {
		return 0
	}
	return uint32(min(max(c.opts.maxStreamLag/5, 100*time.Millisecond), time.Second).Milliseconds())
}

// tooFarBehind reports whether the serving node is behind its cluster by
// more than WithMaxStreamLag.
func (s *subscription) tooFarBehind(p *factstrv1.StreamProgress) bool {
	d := s.c.opts.maxStreamLag
	return d > 0 && len(s.c.conns) > 1 && p.GetBehindSeconds() > d.Seconds()
}

// resumeNode is the first node a resumed stream tries: the next in turn,
// but not the node it is moving off (when there is another).
func (s *subscription) resumeNode() int {
	node := s.c.pick()
	if s.move.avoid > 0 && node == s.move.avoid-1 {
		node = (node + 1) % len(s.c.conns)
	}
	s.move.avoid = 0
	return node
}

// beginDurableMove asks the node that fell behind to end the durable
// stream as an Unsubscribe would: it stores the acknowledged cursor,
// releases the name and answers Released, on which runDurable resumes on
// another node. Batches the node sends meanwhile are handled and
// acknowledged as usual, so the cursor it stores covers them.
func (s *subscription) beginDurableMove(p *factstrv1.StreamProgress) {
	if s.move.moving {
		return
	}
	s.logMove(p)
	s.move.moving = true
	s.move.avoid = s.node + 1
	end := s.endStream
	s.move.timer = time.AfterFunc(durableMoveTimeout, end)
	s.sendMu.Lock()
	err := s.dstream.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Unsubscribe{Unsubscribe: &factstrv1.DurableUnsubscribe{}}})
	s.sendMu.Unlock()
	if err != nil {
		end() // the stream is broken: runDurable resumes it
	}
}

func (s *subscription) logMove(p *factstrv1.StreamProgress) {
	s.c.log.Warn("stream's node is behind the cluster; moving the stream to another node", "subscription", s.id, "name", s.name,
		"node", s.c.targets[s.node], "behind", time.Duration(p.GetBehindSeconds()*float64(time.Second)).Round(time.Millisecond),
		"max", s.c.opts.maxStreamLag)
}

// silenceLimit is how long a stream whose node sends progress may go
// without any message before the client takes the node for stuck (a
// paused or hung process, a connection that stopped carrying data): the
// bound of WithMaxStreamLag, and at least three progress intervals.
func (c *Client) silenceLimit() time.Duration {
	return max(c.opts.maxStreamLag, 3*time.Duration(c.progressIntervalMs())*time.Millisecond)
}

// awaitMessage is called before each Recv of the delivering goroutine:
// once the node has sent progress, a Recv that waits past silenceLimit
// ends the stream, which then resumes on another node as after a failure
// (keepalive would notice a stuck node only after 40 s). The clock runs
// only while the goroutine waits for the node, never while a handler runs.
func (s *subscription) awaitMessage() {
	s.stopSilence()
	if !s.move.progressSeen || s.c.opts.maxStreamLag <= 0 || len(s.c.conns) < 2 {
		return
	}
	end, node, limit := s.endStream, s.node, s.c.silenceLimit()
	s.move.silence = time.AfterFunc(limit, func() {
		s.c.log.Warn("stream's node sent nothing in time; moving the stream to another node", "subscription", s.id, "name", s.name,
			"node", s.c.targets[node], "silent_for", limit)
		end()
	})
}

// stopSilence stops the clock of awaitMessage (a message came).
func (s *subscription) stopSilence() {
	if s.move.silence != nil {
		s.move.silence.Stop()
		s.move.silence = nil
	}
}

// opened resets the move state for a stream just opened on node.
func (s *subscription) opened(node int, end context.CancelFunc) {
	s.stopSilence()
	s.node, s.endStream = node, end
	s.move.progressSeen = false
}
