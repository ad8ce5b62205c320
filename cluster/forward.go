package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/wire"
)

// forwarder sends a follower's batches to the leader over one long-lived
// ForwardStream, without waiting for earlier answers, and answers each
// batch's groups when the leader does.
//
// An answer that never comes (the stream broke, the leader changed, the
// leader stalls) leaves the outcome unknown: the groups fail with
// ErrOutcomeUnknown and callers retry with the same idempotency key, so a
// batch the old leader did commit is never appended twice. Only the proposer
// goroutine calls send, so the stream has one sender.
type forwarder struct {
	cfg          *Config
	raft         *raft.Raft
	leaderClient func() (string, peerv1.PeerServiceClient, error)
	ctx          context.Context // the node's: streams end with it
	wg           *sync.WaitGroup // the node's: it waits for stream goroutines

	mu  sync.Mutex
	cur *fwdStream
	ids uint64
}

// fwdStream is one ForwardStream to one leader.
type fwdStream struct {
	leaderID string
	stream   peerv1.PeerService_ForwardStreamClient
	cancel   context.CancelFunc

	mu      sync.Mutex
	pending map[uint64]*fwdBatch
	broken  error // set once; pending batches are then failed
}

type fwdBatch struct {
	groups  []*group
	count   int
	sent    time.Time
	release func() // the proposer's slot, freed once the batch is answered or failed
}

// fail answers every group of b with err and frees its slot.
func (b *fwdBatch) fail(err error) {
	b.release()
	fail(b.groups, err)
}

// stallTimeout: a stream whose oldest unanswered batch is older than this
// is abandoned (its batches become unknown outcomes, retried elsewhere).
func (f *forwarder) stallTimeout() time.Duration { return f.cfg.ApplyTimeout + 5*time.Second }

// send forwards groups as one batch; release is called once the batch is
// answered or failed.
func (f *forwarder) send(ctx context.Context, groups []*group, release func()) {
	s, err := f.stream(ctx)
	if err != nil {
		release()
		fail(groups, err)
		return
	}
	count := 0
	for _, g := range groups {
		count += len(g.cmds)
	}
	cmds := make([]command.Command, 0, count)
	for _, g := range groups {
		cmds = append(cmds, g.cmds...)
	}
	f.ids++
	id := f.ids
	b := &fwdBatch{groups: groups, count: count, sent: time.Now(), release: release}
	s.mu.Lock()
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		b.fail(err)
		return
	}
	s.pending[id] = b
	s.mu.Unlock()
	f.cfg.observePropose(ProposeForward, len(groups), count)
	if err := s.stream.Send(&peerv1.ForwardStreamRequest{Id: id, Commands: command.Encode(cmds), FromNodeId: f.cfg.NodeID}); err != nil {
		// The receive loop sees the broken stream too and fails every
		// pending batch, this one included; the request may have left.
		s.breakWith(fmt.Errorf("%w: forward stream to %s: %v", ErrOutcomeUnknown, s.leaderID, err))
	}
}

// stream returns the stream to the current leader, opening one (and
// abandoning a stream to a former leader) when needed.
func (f *forwarder) stream(ctx context.Context) (*fwdStream, error) {
	lid, cl, err := f.leaderClient()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.cur; s != nil {
		if s.leaderID == lid && s.healthy(f.stallTimeout()) {
			return s, nil
		}
		s.breakWith(fmt.Errorf("%w: forward stream to %s abandoned (leader is now %s)", ErrOutcomeUnknown, s.leaderID, lid))
		f.cur = nil
	}
	sctx, cancel := context.WithCancel(f.ctx)
	stream, err := cl.ForwardStream(sctx)
	if err != nil {
		cancel()
		return nil, wire.FromPeerStatus(err)
	}
	s := &fwdStream{leaderID: lid, stream: stream, cancel: cancel, pending: make(map[uint64]*fwdBatch)}
	f.cur = s
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.receive()
	}()
	return s, nil
}

// watch abandons the current stream as soon as it goes bad: the leader
// changed (or none is known), or an answer is overdue. Only the proposer
// sends, and it may be blocked in Send on a stream whose leader went away
// without a reset (gRPC's flow control waits for a peer that does not
// read); breaking the stream cancels its context, which frees the Send,
// fails the pending batches as unknown outcomes and frees their slots, so
// callers retry on the new leader within a fraction of a second instead
// of waiting for TCP to give up.
func (f *forwarder) watch(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		s := f.cur
		f.mu.Unlock()
		if s == nil {
			continue
		}
		_, lid := f.raft.LeaderWithID()
		reason := ""
		switch {
		case string(lid) != s.leaderID:
			reason = fmt.Sprintf("the leader is now %q", lid)
		case !s.healthy(f.stallTimeout()):
			reason = "an answer is overdue"
		default:
			continue
		}
		s.breakWith(fmt.Errorf("%w: forward stream to %s abandoned: %s", ErrOutcomeUnknown, s.leaderID, reason))
		f.mu.Lock()
		if f.cur == s {
			f.cur = nil
		}
		f.mu.Unlock()
	}
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil {
		f.cur.breakWith(fmt.Errorf("%w: node is shutting down", ErrOutcomeUnknown))
		f.cur = nil
	}
}

// healthy: not broken and no answer overdue.
func (s *fwdStream) healthy(stall time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return false
	}
	for _, b := range s.pending {
		if time.Since(b.sent) > stall {
			return false
		}
	}
	return true
}

// breakWith ends the stream and fails every pending batch with err.
func (s *fwdStream) breakWith(err error) {
	s.mu.Lock()
	if s.broken == nil {
		s.broken = err
	}
	pending := s.pending
	s.pending = make(map[uint64]*fwdBatch)
	s.mu.Unlock()
	s.cancel()
	for _, b := range pending {
		b.fail(err)
	}
}

func (s *fwdStream) receive() {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.breakWith(wire.FromPeerStatus(err))
			return
		}
		s.mu.Lock()
		b := s.pending[resp.GetId()]
		delete(s.pending, resp.GetId())
		s.mu.Unlock()
		if b == nil {
			continue // answered after the batch was failed already
		}
		s.answer(b, resp)
	}
}

func (s *fwdStream) answer(b *fwdBatch, resp *peerv1.ForwardStreamResponse) {
	if code := codes.Code(resp.GetCode()); code != codes.OK {
		b.fail(wire.FromPeerStatus(status.Error(code, resp.GetMessage())))
		return
	}
	res, err := command.DecodeResults(resp.GetResults())
	if err == nil && len(res) != b.count {
		err = fmt.Errorf("leader returned %d results for %d commands", len(res), b.count)
	}
	if err != nil {
		b.fail(fmt.Errorf("%w: %v", ErrOutcomeUnknown, err))
		return
	}
	b.release()
	for _, g := range b.groups {
		g.done(res[:len(g.cmds):len(g.cmds)], resp.GetIndex(), nil)
		res = res[len(g.cmds):]
	}
}
