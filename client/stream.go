package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

// durableResumeTimeout bounds how long a durable stream that lost its node
// waits for its name to be released (the leader releases a dead node's
// leases once gossip declares it failed).
const durableResumeTimeout = 60 * time.Second

type subscription struct {
	c       *Client
	id      uint64
	durable bool
	name    string
	query   contract.EventQuery
	start   contract.StartPosition // durable: where a new name starts
	group   *contract.GroupSpec    // durable: a consumer group member (nil: a plain name)
	failure contract.FailurePolicy // durable: the policy asked for a new name
	// failed is the handler's error on the last durable delivery, nil
	// once a delivery succeeds: a stop-policy stream the server ends right
	// after it ended on that failure. Owned by the delivering goroutine.
	failed  error
	read    contract.ReadOptions
	handler contract.StreamHandler

	hctx    context.Context // handed to the handler
	hcancel context.CancelFunc
	sctx    context.Context // the gRPC stream's; outlives hctx for the release handshake
	scancel context.CancelFunc

	lastSeen uint64 // live: resume position; owned by the delivering goroutine
	// The node serving the stream, the cancel of its gRPC stream, and a
	// move off a node that fell behind (see move.go); owned by the
	// delivering goroutine.
	node      int
	endStream context.CancelFunc
	move      moveState

	mu        sync.Mutex
	stopped   bool
	stopCause error // why stopped was set: nil for Unsubscribe
	err       error // why the stream ended; set before done is closed
	inHandler bool  // a handler call is running: Unsubscribe does not wait
	started   bool
	sendMu    sync.Mutex
	dstream   grpc.BidiStreamingClient[factstrv1.StreamDurableRequest, factstrv1.StreamDurableResponse]
	done      chan struct{}
}

func (s *subscription) ID() uint64 { return s.id }

// Done is closed when the stream has ended (see contract.Subscription).
func (s *subscription) Done() <-chan struct{} { return s.done }

// Err tells why the stream ended: nil while it runs and after Unsubscribe;
// otherwise the ctx's cause, contract.ErrClosed (the client was closed),
// contract.ErrHandlerFailed (a durable handler's failure) or
// contract.ErrStreamLost (no node could resume it in time).
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// finish records why the stream ended; a stop (Unsubscribe, the call's
// ctx, Close) decides over what the delivering goroutine saw.
func (s *subscription) finish(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		reason = s.stopCause
	}
	s.err = reason
}

func (c *Client) newSub(ctx context.Context, durable bool, name string, q contract.EventQuery, h contract.StreamHandler) (*subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: stream handler must not be nil", contract.ErrInvalidQuery)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, contract.ErrClosed
	}
	c.nextID++
	s := &subscription{c: c, id: c.nextID, durable: durable, name: name, query: q, read: contract.ReadOptionsFrom(ctx), handler: h, done: make(chan struct{})}
	s.hctx, s.hcancel = context.WithCancel(ctx)
	s.sctx, s.scancel = context.WithCancel(c.ctx)
	c.subs[s.id] = s
	return s, nil
}

func (c *Client) dropSub(s *subscription) {
	c.mu.Lock()
	delete(c.subs, s.id)
	c.mu.Unlock()
	s.hcancel()
	s.scancel()
}

// StreamAll delivers every batch committed after the call returns.
func (c *Client) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return c.StreamTo(ctx, contract.EventQuery{}, h)
}

// StreamTo delivers matching batches committed after the call returns; with
// MinSequenceNumber > 0 it first catches up from there.
func (c *Client) StreamTo(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	s, err := c.newSub(ctx, false, "", q, h)
	if err != nil {
		return nil, err
	}
	var st grpc.ServerStreamingClient[factstrv1.StreamResponse]
	err = c.retry(ctx, func(_ context.Context, node int) (bool, error) {
		var err error
		st, err = s.openLive(node, q.MinSequenceNumber, false)
		return retryable(err), err
	})
	if err != nil {
		c.dropSub(s)
		return nil, mapErr(err)
	}
	s.watchCallCtx(ctx)
	s.markStarted()
	go s.runLive(st)
	return s, nil
}

// openLive opens a Stream on node and delivers any catch-up batches before
// the server says the subscription is in place. The attempt timeout bounds
// only the wait for the node's first message, never the stream.
func (s *subscription) openLive(node int, from uint64, catchUp bool) (grpc.ServerStreamingClient[factstrv1.StreamResponse], error) {
	a := s.c.newAttempt(s.sctx)
	st, err := s.openLiveOn(a, node, from, catchUp)
	if err != nil {
		if a.timedOut() {
			err = s.c.timeoutErr(node, err)
		}
		a.end()
		return nil, err
	}
	// The stream lives on a.ctx, which ends with s.sctx; its clock stopped
	// at the first message.
	s.opened(node, a.cancel)
	return st, nil
}

func (s *subscription) openLiveOn(a *attempt, node int, from uint64, catchUp bool) (grpc.ServerStreamingClient[factstrv1.StreamResponse], error) {
	q := s.query
	q.MinSequenceNumber = from
	st, err := s.c.es(node).Stream(a.ctx, &factstrv1.StreamRequest{Query: wire.QueryToProto(q), Read: wire.ReadOptionsToProto(s.read), CatchUp: catchUp,
		ProgressIntervalMs: s.c.progressIntervalMs()})
	if err != nil {
		return nil, err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		if !a.answered() {
			return nil, context.Canceled // the attempt timed out as the message came
		}
		switch k := m.GetKind().(type) {
		case *factstrv1.StreamResponse_Batch:
			s.deliverLive(k.Batch)
		case *factstrv1.StreamResponse_Subscribed:
			s.lastSeen = max(s.lastSeen, k.Subscribed.GetHead())
			return st, nil
		}
	}
}

func (s *subscription) deliverLive(b *factstrv1.Batch) {
	recs := wire.RecordsFromProto(b.GetEvents())
	if len(recs) == 0 || recs[len(recs)-1].SequenceNumber <= s.lastSeen {
		return // a resumed stream never delivers a batch twice
	}
	if s.isStopped() {
		return
	}
	_ = s.deliver(recs, contract.Delivery{Attempt: 1}) // a live stream goes on after a failing handler
	s.lastSeen = recs[len(recs)-1].SequenceNumber
}

func (s *subscription) runLive(st grpc.ServerStreamingClient[factstrv1.StreamResponse]) {
	s.begin()
	defer close(s.done)
	defer s.c.dropSub(s)
	var reason error
	defer func() { s.finish(reason) }()
	defer s.stopSilence()
	for {
		s.awaitMessage()
		m, err := st.Recv()
		s.stopSilence()
		if err == nil {
			if m.GetProgress() != nil {
				s.move.progressSeen = true
			}
			if b := m.GetBatch(); b != nil {
				s.deliverLive(b)
			} else if p := m.GetProgress(); p != nil && s.tooFarBehind(p) {
				// End the stream on the node that fell behind: the Recv
				// error below resumes after lastSeen, on another node.
				s.logMove(p)
				s.move.avoid = s.node + 1
				s.endStream()
			}
			continue
		}
		if s.isStopped() || s.sctx.Err() != nil {
			return
		}
		s.c.log.Info("live stream lost its node; resuming elsewhere", "subscription", s.id, "after", s.lastSeen, "error", err)
		st, err = s.reconnectLive()
		if st == nil {
			if err != nil {
				reason = fmt.Errorf("%w: %w", contract.ErrStreamLost, mapErr(err))
			}
			return
		}
	}
}

// reconnectLive resumes after lastSeen on the next node that answers. It
// returns no stream when the subscription was stopped, or the error that
// makes resuming pointless.
func (s *subscription) reconnectLive() (grpc.ServerStreamingClient[factstrv1.StreamResponse], error) {
	backoff := 50 * time.Millisecond
	node := s.resumeNode()
	for {
		if s.isStopped() || s.sctx.Err() != nil {
			return nil, nil
		}
		st, err := s.openLive(node, s.lastSeen, true)
		if err == nil {
			return st, nil
		}
		if !retryable(err) && status.Code(err) != codes.OutOfRange && status.Code(err) != codes.Internal {
			s.c.log.Warn("live stream cannot resume; it ends", "subscription", s.id, "error", err)
			return nil, err
		}
		node = (node + 1) % len(s.c.conns)
		select {
		case <-s.sctx.Done():
			return nil, nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// StreamAllDurable is StreamToDurable over every event.
func (c *Client) StreamAllDurable(ctx context.Context, name string, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return c.StreamToDurable(ctx, name, contract.EventQuery{}, h, opts...)
}

// StreamToDurable replays from the name's server-stored cursor, then
// continues live; each batch is acknowledged after the handler returns nil.
//
// A start position (contract.StartAtEnd, contract.StartAfter) applies when
// the name is new. When the stream resumes on another node the name
// exists, so it resumes from the cursor.
func (c *Client) StreamToDurable(ctx context.Context, name string, q contract.EventQuery, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	o := contract.NewDurableOptions(opts...)
	if err := o.Start.Validate(); err != nil {
		return nil, err
	}
	if err := o.Failure.Validate(); err != nil {
		return nil, err
	}
	if o.Group != nil {
		if err := o.Group.Validate(); err != nil {
			return nil, err
		}
	}
	s, err := c.newSub(ctx, true, name, q, h)
	if err != nil {
		return nil, err
	}
	s.start, s.group, s.failure = o.Start, o.Group, o.Failure.Normalized()
	err = c.retry(ctx, func(_ context.Context, node int) (bool, error) {
		err := s.openDurable(node)
		return retryable(err), err
	})
	if err != nil {
		c.dropSub(s)
		return nil, mapErr(err)
	}
	s.watchCallCtx(ctx)
	s.markStarted()
	go s.runDurable()
	return s, nil
}

// openDurable subscribes on node and runs the replay; it returns once the
// server says the subscription is live. The attempt timeout bounds only the
// wait for the node's first message.
func (s *subscription) openDurable(node int) error {
	a := s.c.newAttempt(s.sctx)
	err := s.openDurableOn(a, node)
	switch {
	case err == nil:
		s.opened(node, a.cancel)
	case a.timedOut():
		err = s.c.timeoutErr(node, err)
		a.end()
	default:
		// Leave the stream's ctx alone (it ends with s.sctx): an ack
		// carrying the handler's error may still be on its way.
		a.answered()
	}
	return err
}

func (s *subscription) openDurableOn(a *attempt, node int) error {
	st, err := s.c.es(node).StreamDurable(a.ctx)
	if err != nil {
		return err
	}
	s.failed = nil // a failure on an earlier stream is not this one's
	s.sendMu.Lock()
	s.dstream = st
	err = st.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{
		Name: s.name, Query: wire.QueryToProto(s.query), Read: wire.ReadOptionsToProto(s.read), Start: wire.StartToProto(s.start),
		Group:              wire.GroupSpecToProto(s.group),
		Failure:            wire.FailureToProto(s.failure),
		ProgressIntervalMs: s.c.progressIntervalMs(),
	}}})
	s.sendMu.Unlock()
	if err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			if ferr := s.endedOnFailure(err); ferr != nil {
				return ferr
			}
			return err
		}
		if !a.answered() {
			return context.Canceled // the attempt timed out as the message came
		}
		switch k := m.GetKind().(type) {
		case *factstrv1.StreamDurableResponse_Batch:
			if err := s.deliverDurable(k.Batch); err != nil {
				return err
			}
		case *factstrv1.StreamDurableResponse_Subscribed:
			return nil
		case *factstrv1.StreamDurableResponse_Released:
			return status.Error(codes.Aborted, "durable stream released during replay")
		}
	}
}

// deliverDurable runs the handler and acknowledges: the ack carries the
// handler's error. The name's failure policy, applied by the server,
// decides what follows: stop ends the stream on the server without moving
// the cursor (the client then ends with ErrHandlerFailed, see
// endedOnFailure), retry then park delivers the batch again.
func (s *subscription) deliverDurable(b *factstrv1.Batch) error {
	recs := wire.RecordsFromProto(b.GetEvents())
	if len(recs) == 0 {
		return nil
	}
	herr := s.deliver(recs, wire.DeliveryFromBatch(b))
	if errors.Is(herr, errNotDelivered) {
		s.decline(recs[len(recs)-1].SequenceNumber)
		return nil
	}
	ack := &factstrv1.DurableAck{LastSequenceNumber: recs[len(recs)-1].SequenceNumber}
	s.failed = nil
	if herr != nil {
		ack.Error = herr.Error()
		if ack.Error == "" {
			ack.Error = "handler failed"
		}
		s.failed = fmt.Errorf("durable stream %q: %w on the batch ending at %d: %w", s.name, contract.ErrHandlerFailed, ack.LastSequenceNumber, herr)
	}
	s.sendMu.Lock()
	err := s.dstream.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Ack{Ack: ack}})
	s.sendMu.Unlock()
	return err
}

// decline answers a batch the handler was not given (the subscription
// stopped, or its call's ctx ended): the server is told of the
// unsubscribe first (again, if stop already did; it takes the first),
// then gets an error ack, which it takes as the end of the stream, not as
// a handler failure to retry or park. The batch is not recorded as
// handled, and the server does not wait for an ack that never comes.
func (s *subscription) decline(last uint64) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	_ = s.dstream.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Unsubscribe{Unsubscribe: &factstrv1.DurableUnsubscribe{}}})
	_ = s.dstream.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Ack{Ack: &factstrv1.DurableAck{
		LastSequenceNumber: last, Error: "not delivered: the subscription stopped"}}})
}

// endedOnFailure is the handler's failure when the server ended the
// stream (recvErr) after the last delivery failed: the name's policy is
// stop. A stream asked to retry then park ends so only when the server
// says it aborted; otherwise it resumes like any broken stream.
func (s *subscription) endedOnFailure(recvErr error) error {
	if s.failed == nil {
		return nil
	}
	if s.failure.Parks() && status.Code(recvErr) != codes.Aborted {
		return nil
	}
	return s.failed
}

func (s *subscription) runDurable() {
	s.begin()
	defer close(s.done)
	defer s.c.dropSub(s)
	var reason error
	defer func() { s.finish(reason) }()
	defer s.stopSilence()
	for {
		s.awaitMessage()
		m, err := s.dstream.Recv()
		s.stopSilence()
		if err == nil {
			switch k := m.GetKind().(type) {
			case *factstrv1.StreamDurableResponse_Batch:
				// An ack that could not be sent breaks the stream: the next
				// Recv fails and the stream resumes from the cursor.
				_ = s.deliverDurable(k.Batch)
			case *factstrv1.StreamDurableResponse_Progress:
				s.move.progressSeen = true
				if s.tooFarBehind(k.Progress) {
					s.beginDurableMove(k.Progress)
				}
			case *factstrv1.StreamDurableResponse_Released:
				if !s.move.moving || s.isStopped() {
					return
				}
				// The node that fell behind stored the cursor and freed
				// the name: continue on another node.
				s.move.end()
				s.move.moved = true
				if err := s.reconnectDurable(); err != nil {
					reason = err
					return
				}
			}
			continue
		}
		s.move.end()
		if s.isStopped() || s.sctx.Err() != nil {
			return
		}
		if ferr := s.endedOnFailure(err); ferr != nil {
			reason = ferr
			return
		}
		if status.Code(err) == codes.Aborted {
			reason = fmt.Errorf("durable stream %q ended by the server: %w", s.name, mapErr(err))
			return
		}
		s.c.log.Info("durable stream lost its node; resuming elsewhere", "name", s.name, "error", err)
		if err := s.reconnectDurable(); err != nil {
			reason = err
			return
		}
	}
}

// reconnectDurable subscribes again on the next node that answers. It
// returns why the stream ends instead: the handler failed during the
// replay, or no node took it back within durableResumeTimeout
// (contract.ErrStreamLost). A stopped subscription ends with nil.
func (s *subscription) reconnectDurable() error {
	deadline := time.Now().Add(durableResumeTimeout)
	backoff := 50 * time.Millisecond
	node := s.resumeNode()
	for {
		if s.isStopped() {
			return nil
		}
		err := s.openDurable(node)
		if err == nil {
			s.move.moved = false
			return nil
		}
		// A replay failure of our own handler ends the stream.
		if errors.Is(err, contract.ErrHandlerFailed) {
			return err
		}
		if status.Code(err) == codes.Unknown || errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %w", contract.ErrStreamLost, mapErr(err))
		}
		if s.move.moved && errors.Is(mapErr(err), contract.ErrDurableNameInUse) {
			// The node this stream moved off still holds the name: it
			// could not reach the leader to let it go. It will once it
			// can (it retries), or the leader frees it when gossip
			// declares that node failed; until then wait, as the stream
			// would have on that node.
			deadline = time.Now().Add(durableResumeTimeout)
		}
		node = (node + 1) % len(s.c.conns)
		wait := time.NewTimer(min(backoff, max(time.Until(deadline), 0)))
		select {
		case <-s.sctx.Done():
			wait.Stop()
		case <-wait.C:
		}
		if s.sctx.Err() != nil || !time.Now().Before(deadline) {
			s.c.log.Warn("durable stream could not resume; it ends", "name", s.name, "error", err)
			return fmt.Errorf("%w: durable stream %q could not resume within %v: %w", contract.ErrStreamLost, s.name, durableResumeTimeout, mapErr(err))
		}
		backoff = min(backoff*2, time.Second)
	}
}

// errNotDelivered is deliver's answer for a stopped subscription: the
// handler was not called, so a durable batch is not acknowledged.
var errNotDelivered = errors.New("subscription stopped before the delivery")

// deliver calls the handler unless the subscription was stopped. The check
// and inHandler are set under one lock, so an Unsubscribe either sees the
// handler call running (and does not wait: it may come from inside it) or
// none will start.
func (s *subscription) deliver(recs []contract.EventRecord, d contract.Delivery) (err error) {
	s.mu.Lock()
	// The handler's ctx ends with the Stream* call's ctx before the
	// AfterFunc that stops the subscription has run.
	if s.stopped || s.hctx.Err() != nil {
		s.mu.Unlock()
		return errNotDelivered
	}
	s.inHandler = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inHandler = false
		s.mu.Unlock()
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return s.handler(contract.WithDelivery(s.hctx, d), recs)
}

// markStarted is called just before the delivering goroutine is started,
// so that an Unsubscribe right after StreamTo or StreamToDurable returned
// waits for that goroutine to end (and, for a durable stream, for the
// server to release the name) instead of returning at once.
func (s *subscription) markStarted() {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
}

func (s *subscription) begin() {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
}

func (s *subscription) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *subscription) watchCallCtx(ctx context.Context) {
	context.AfterFunc(ctx, func() { s.stop(context.Cause(ctx)) })
}

// Unsubscribe stops future deliveries. While no handler call is running it
// waits until the stream has ended (for a durable stream: the server
// released the name); while one is, it returns at once, since it may come
// from inside that handler, and Done is closed once the call has returned
// and the name is released.
func (s *subscription) Unsubscribe() { s.stop(nil) }

// stop is Unsubscribe with the reason Err reports (nil for Unsubscribe);
// the first stop decides it.
func (s *subscription) stop(cause error) {
	s.mu.Lock()
	already := s.stopped
	if !already {
		s.stopped, s.stopCause = true, cause
	}
	started, busy := s.started, s.inHandler
	s.mu.Unlock()
	s.hcancel()
	if !already && s.durable {
		s.sendMu.Lock()
		if s.dstream != nil {
			_ = s.dstream.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Unsubscribe{Unsubscribe: &factstrv1.DurableUnsubscribe{}}})
		}
		s.sendMu.Unlock()
	}
	if !s.durable {
		s.scancel()
	}
	if !started || busy {
		return
	}
	select {
	case <-s.done:
	case <-time.After(durableResumeTimeout):
		s.c.log.Warn("unsubscribe: the server did not confirm the release in time", "subscription", s.id)
		s.scancel()
	}
}
