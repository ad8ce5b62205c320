package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
	"github.com/factstr/factstr-go/internal/wire"
)

// DefaultPageSize is the number of events per Query page when the request
// gives none; pages are also cut by bytes (maxPageBytes).
const (
	DefaultPageSize = 1000
	maxPageBytes    = 1 << 20
)

// EventStore serves factstr.v1.EventStoreService.
type EventStore struct {
	factstrv1.UnimplementedEventStoreServiceServer
	store contract.EventStore
	log   *slog.Logger
	obs   StreamObserver
}

// StreamObserver learns about the streams this service serves (metrics).
// Its methods must not block.
type StreamObserver interface {
	// SubscriberStarted and SubscriberEnded bracket every subscription;
	// kind is "live" or "durable".
	SubscriberStarted(kind string)
	SubscriberEnded(kind string)
	// SubscriberTooSlow reports a live subscription ended because its
	// client took no delivery in time.
	SubscriberTooSlow()
	// DurableAt reports that the durable stream name has been delivered
	// (and acknowledged) through sequence number pos; at is the commit
	// time of that event (zero when unknown).
	DurableAt(name string, pos uint64, at time.Time)
	// DurableEnded reports that this node no longer serves name.
	DurableEnded(name string)
}

// WithObserver sets the stream observer and returns s.
func (s *EventStore) WithObserver(o StreamObserver) *EventStore {
	s.obs = o
	return s
}

// NewEventStore returns the service over store.
func NewEventStore(store contract.EventStore, log *slog.Logger) *EventStore {
	if log == nil {
		log = slog.Default()
	}
	return &EventStore{store: store, log: log}
}

// Register registers the service on s.
func (s *EventStore) Register(r grpc.ServiceRegistrar) {
	factstrv1.RegisterEventStoreServiceServer(r, s)
}

func (s *EventStore) status(err error) error { return wire.ToStatus(err) }

func (s *EventStore) Append(ctx context.Context, req *factstrv1.AppendRequest) (*factstrv1.AppendResponse, error) {
	if !utf8.ValidString(req.GetIdempotencyKey()) {
		return nil, status.Error(codes.InvalidArgument, "the idempotency key is not valid UTF-8")
	}
	r, err := s.append(ctx, wire.EventsFromProto(req.GetEvents()), req.GetIdempotencyKey())
	if err != nil {
		return nil, s.status(err)
	}
	return &factstrv1.AppendResponse{FirstSequenceNumber: r.FirstSequenceNumber, LastSequenceNumber: r.LastSequenceNumber, CommittedCount: r.CommittedCount, Duplicate: r.Duplicate}, nil
}

func (s *EventStore) AppendIf(ctx context.Context, req *factstrv1.AppendIfRequest) (*factstrv1.AppendIfResponse, error) {
	if !utf8.ValidString(req.GetIdempotencyKey()) {
		return nil, status.Error(codes.InvalidArgument, "the idempotency key is not valid UTF-8")
	}
	events, query := wire.EventsFromProto(req.GetEvents()), wire.QueryFromProto(req.GetContext())
	if err := refuseUnnarrowed(events, query); err != nil {
		return nil, s.status(err)
	}
	r, err := s.appendIf(ctx, events, query, req.GetExpectedContextVersion(), req.GetIdempotencyKey())
	if err != nil {
		return nil, s.status(err)
	}
	return &factstrv1.AppendIfResponse{FirstSequenceNumber: r.FirstSequenceNumber, LastSequenceNumber: r.LastSequenceNumber, CommittedCount: r.CommittedCount, Duplicate: r.Duplicate}, nil
}

// append and appendIf hand the key to a store that takes it explicitly and
// reports duplicates (a cluster node, boltstore, the Go client); any other
// store (memstore, which keeps no keys) gets it through the
// context and reports none.
func (s *EventStore) append(ctx context.Context, events []contract.NewEvent, key string) (contract.AppendOutcome, error) {
	if a, ok := s.store.(contract.IdempotentAppender); ok {
		return a.AppendWith(ctx, events, contract.AppendOptions{IdempotencyKey: key})
	}
	if key != "" {
		ctx = contract.WithIdempotencyKey(ctx, key)
	}
	r, err := s.store.Append(ctx, events)
	return contract.AppendOutcome{AppendResult: r}, err
}

func (s *EventStore) appendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64, key string) (contract.AppendOutcome, error) {
	if a, ok := s.store.(contract.IdempotentAppender); ok {
		return a.AppendIfWith(ctx, events, query, expected, contract.AppendOptions{IdempotencyKey: key})
	}
	if key != "" {
		ctx = contract.WithIdempotencyKey(ctx, key)
	}
	r, err := s.store.AppendIf(ctx, events, query, expected)
	return contract.AppendOutcome{AppendResult: r}, err
}

// refuseUnnarrowed refuses an AppendIf context no index narrows before the
// store sees it: deciding its version would scan the log inside every
// replica's Apply. The store applies its own limits to the rest; on this
// path only, the events are checked first, so that an empty or invalid
// batch keeps its own error, as the contract orders them.
func refuseUnnarrowed(events []contract.NewEvent, query contract.EventQuery) error {
	err := contract.ValidateContext(query, contract.Limits{})
	if err == nil {
		return nil
	}
	if eerr := contract.ValidateEvents(events, contract.Limits{}); eerr != nil {
		return eerr
	}
	return err
}

// Query sends the result in pages cut by count and by bytes, so no message
// grows with the result; every page carries the result's versions. A result
// over the store's bound is sent as far as it goes, then the
// RESOURCE_EXHAUSTED status, so that a client can resume after it.
func (s *EventStore) Query(req *factstrv1.QueryRequest, stream grpc.ServerStreamingServer[factstrv1.QueryResponse]) error {
	ctx := contract.WithReadOptions(stream.Context(), wire.ReadOptionsFromProto(req.GetRead()))
	res, err := s.store.Query(ctx, wire.QueryFromProto(req.GetQuery()))
	if errors.Is(err, contract.ErrResultTooLarge) {
		if len(res.Events) > 0 {
			if serr := s.sendQuery(req, stream, res); serr != nil {
				return serr
			}
		}
		return s.status(err)
	}
	if err != nil {
		return s.status(err)
	}
	return s.sendQuery(req, stream, res)
}

func (s *EventStore) sendQuery(req *factstrv1.QueryRequest, stream grpc.ServerStreamingServer[factstrv1.QueryResponse], res contract.QueryResult) error {
	pageSize := int(req.GetPageSize())
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	page := func(evs []contract.EventRecord) error {
		return stream.Send(&factstrv1.QueryResponse{
			Events:                     wire.RecordsToProto(evs),
			LastReturnedSequenceNumber: res.LastReturnedSequenceNumber,
			CurrentContextVersion:      res.CurrentContextVersion,
		})
	}
	if len(res.Events) == 0 {
		return page(nil)
	}
	start, bytes := 0, 0
	for i, ev := range res.Events {
		bytes += len(ev.Payload) + len(ev.Type) + 32
		if i+1-start >= pageSize || bytes >= maxPageBytes || i == len(res.Events)-1 {
			if err := page(res.Events[start : i+1]); err != nil {
				return err
			}
			start, bytes = i+1, 0
		}
	}
	return nil
}

// catchUpStreamer is a store that can catch a stream up from 0 (every
// FACTSTR store): a client resuming a stream that began on an empty log
// asks for everything after position 0, which StreamTo reads as "from now".
type catchUpStreamer interface {
	StreamCatchUp(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error)
}

// Stream serves StreamAll / StreamTo. Messages go out through a sender of
// their own, so a client that does not read holds back only its own
// subscription, and only until the engine's stall timeout ends it.
func (s *EventStore) Stream(req *factstrv1.StreamRequest, stream grpc.ServerStreamingServer[factstrv1.StreamResponse]) error {
	ctx := contract.WithReadOptions(stream.Context(), wire.ReadOptionsFromProto(req.GetRead()))
	streamTo := s.store.StreamTo
	if req.GetCatchUp() {
		cu, ok := s.store.(catchUpStreamer)
		if !ok {
			return status.Error(codes.Unimplemented, "this store cannot catch a stream up from the first event")
		}
		streamTo = cu.StreamCatchUp
	}
	out := startSender(stream.Send)
	defer out.close()
	failed := make(chan error, 1)
	sub, err := streamTo(ctx, wire.QueryFromProto(req.GetQuery()), func(hctx context.Context, batch []contract.EventRecord) error {
		err := out.send(hctx, &factstrv1.StreamResponse{Kind: &factstrv1.StreamResponse_Batch{Batch: &factstrv1.Batch{Events: wire.RecordsToProto(batch)}}})
		if err != nil {
			select {
			case failed <- err:
			default:
			}
		}
		return err
	})
	if err != nil {
		return s.streamStatus(err)
	}
	defer endAndWait(sub)
	if s.obs != nil {
		s.obs.SubscriberStarted("live")
		defer s.obs.SubscriberEnded("live")
	}
	if err := out.send(ctx, &factstrv1.StreamResponse{Kind: &factstrv1.StreamResponse_Subscribed{Subscribed: subscribed(sub)}}); err != nil {
		return err
	}
	defer s.startProgress(ctx, s.progressEvery(req.GetProgressIntervalMs()), func(pctx context.Context, p *factstrv1.StreamProgress) error {
		return out.send(pctx, &factstrv1.StreamResponse{Kind: &factstrv1.StreamResponse_Progress{Progress: p}})
	})()
	select {
	case <-stream.Context().Done():
		return nil
	case err := <-failed:
		return s.streamStatus(err)
	case <-sub.Done():
		if err := sub.Err(); err != nil && !errors.Is(err, contract.ErrClosed) {
			return s.streamStatus(err)
		}
		// The subscription ended on the server (the node is closing): end
		// the RPC so the client resumes on another node.
		return status.Error(codes.Unavailable, "the stream ended on this node; resume on another node")
	}
}

// streamStatus is status for a live stream's end; it counts a subscriber
// ended for being too slow.
func (s *EventStore) streamStatus(err error) error {
	if errors.Is(err, streams.ErrSubscriberTooSlow) && s.obs != nil {
		s.obs.SubscriberTooSlow()
	}
	return s.status(err)
}

// StreamDurable serves durable streams: each delivered batch waits for the
// client's acknowledgement, and only an ack without error lets the cursor
// advance.
func (s *EventStore) StreamDurable(stream grpc.BidiStreamingServer[factstrv1.StreamDurableRequest, factstrv1.StreamDurableResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	subReq := first.GetSubscribe()
	if subReq == nil {
		return status.Error(codes.InvalidArgument, "the first message of StreamDurable must be subscribe")
	}
	if err := contract.ValidateDurableName(subReq.GetName()); err != nil {
		return s.status(err)
	}
	start, err := wire.StartFromProto(subReq.GetStart())
	if err != nil {
		return s.status(err)
	}
	group, err := wire.GroupSpecFromProto(subReq.GetGroup())
	if err != nil {
		return s.status(err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ctx = contract.WithReadOptions(ctx, wire.ReadOptionsFromProto(subReq.GetRead()))

	acks := make(chan *factstrv1.DurableAck, 1)
	unsub := make(chan struct{})
	recvErr := make(chan error, 1)
	go func() {
		var once sync.Once
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch k := m.GetKind().(type) {
			case *factstrv1.StreamDurableRequest_Ack:
				select {
				case acks <- k.Ack:
				case <-ctx.Done():
					return
				}
			case *factstrv1.StreamDurableRequest_Unsubscribe:
				once.Do(func() { close(unsub) })
			}
		}
	}()

	// One goroutine sends (batches, progress, the release), in order; a
	// send gives up when the call ends.
	out := startSender(stream.Send)
	defer out.close()
	send := func(m *factstrv1.StreamDurableResponse) error { return out.send(ctx, m) }
	ended := make(chan struct{})
	var endOnce sync.Once
	var lastAcked atomic.Uint64 // the cursor, as far as this subscription moved it
	var reported atomic.Bool    // this call reported a position for the name
	handler := func(hctx context.Context, batch []contract.EventRecord) error {
		last := batch[len(batch)-1].SequenceNumber
		b := &factstrv1.Batch{Events: wire.RecordsToProto(batch)}
		if d, ok := contract.DeliveryInfo(hctx); ok {
			wire.DeliveryToBatch(b, d)
		}
		err := send(&factstrv1.StreamDurableResponse{Kind: &factstrv1.StreamDurableResponse_Batch{Batch: b}})
		if err == nil {
			err = waitAck(ctx, acks, last)
		}
		if err == nil {
			lastAcked.Store(last)
		}
		var failed *clientHandlerError
		switch {
		case errors.As(err, &failed) && unsubscribed(unsub):
			// The client unsubscribed before it answered (it sends the
			// unsubscribe first): the batch was not handled, and it is
			// no failure to retry or park. End without recording it.
			cancel()
		case errors.As(err, &failed):
			// The client's handler failed: the store's failure policy
			// decides (stop ends the subscription with ErrHandlerFailed;
			// retry then park delivers the batch again).
		case err != nil:
			// The client is gone or broke the protocol: end the stream
			// before the store could count this as a handler failure
			// (and retry or park the batch).
			cancel()
			endOnce.Do(func() { close(ended) })
		case s.obs != nil:
			reported.Store(true)
			pos := last
			if group != nil {
				// A member's batches come from several partitions: the
				// group's position is the engine's (its lowest partition).
				pos = 0
			}
			s.obs.DurableAt(subReq.GetName(), pos, batch[len(batch)-1].OccurredAt)
		}
		return err
	}
	if s.obs != nil {
		s.obs.SubscriberStarted("durable")
		defer s.obs.SubscriberEnded("durable")
	}
	opts := []contract.DurableOption{contract.StartAt(start), contract.WithFailurePolicy(wire.FailureFromProto(subReq.GetFailure()))}
	if group != nil {
		// A group member's partitions deliver concurrently; the stream
		// carries one batch and its ack at a time.
		handler = serialHandler(handler)
		opts = append(opts, contract.Group(group.Key, group.Partitions))
	}
	sub, err := s.store.StreamToDurable(ctx, subReq.GetName(), wire.QueryFromProto(subReq.GetQuery()), handler, opts...)
	if err != nil {
		if s.obs != nil && reported.Load() {
			s.obs.DurableEnded(subReq.GetName())
		}
		return s.status(err)
	}
	if s.obs != nil {
		defer s.obs.DurableEnded(subReq.GetName())
		if p, ok := sub.(interface{ StartPosition() uint64 }); ok {
			s.obs.DurableAt(subReq.GetName(), p.StartPosition(), time.Time{})
		}
	}
	if err := send(&factstrv1.StreamDurableResponse{Kind: &factstrv1.StreamDurableResponse_Subscribed{Subscribed: subscribed(sub)}}); err != nil {
		sub.Unsubscribe()
		return err
	}
	stopProgress := s.startProgress(ctx, s.progressEvery(subReq.GetProgressIntervalMs()), func(pctx context.Context, p *factstrv1.StreamProgress) error {
		return out.send(pctx, &factstrv1.StreamDurableResponse{Kind: &factstrv1.StreamDurableResponse_Progress{Progress: p}})
	})
	defer stopProgress()
	select {
	case <-unsub:
		// Done waits for an in-flight handler (and so for the client's ack
		// of it) and for the name's release.
		endAndWait(sub)
		stopProgress() // Released is the last message
		return send(&factstrv1.StreamDurableResponse{Kind: &factstrv1.StreamDurableResponse_Released{Released: &factstrv1.Released{Cursor: lastAcked.Load()}}})
	case <-ended:
		endAndWait(sub)
		return status.Error(codes.Aborted, "durable stream stopped: the client's handler failed; the cursor stays before the failed batch")
	case <-sub.Done():
		select {
		case <-ended:
			return status.Error(codes.Aborted, "durable stream stopped: the client's handler failed; the cursor stays before the failed batch")
		default:
		}
		if errors.Is(sub.Err(), contract.ErrHandlerFailed) {
			return status.Error(codes.Aborted, "durable stream stopped: the client's handler failed; the cursor stays before the failed batch")
		}
		// The subscription ended on the server: its lease was lost (this
		// node was declared gone) or the node is closing. The client
		// subscribes again, on this or another node, from the cursor.
		return status.Error(codes.Unavailable, "the durable stream ended on this node (lease lost or node closing); subscribe again to resume from the cursor")
	case err := <-recvErr:
		cancel()
		endAndWait(sub)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return nil
	case <-stream.Context().Done():
		endAndWait(sub)
		return nil
	}
}

// endAndWait unsubscribes and waits until the stream has ended: a handler
// call in flight has returned and a durable name is released. Unsubscribe
// alone does not wait for a running handler call; this goroutine is never
// the handler's, so it can.
func endAndWait(sub contract.Subscription) {
	sub.Unsubscribe()
	<-sub.Done()
}

func waitAck(ctx context.Context, acks <-chan *factstrv1.DurableAck, last uint64) error {
	select {
	case a := <-acks:
		if a.GetError() != "" {
			return &clientHandlerError{msg: a.GetError()}
		}
		if a.GetLastSequenceNumber() != last {
			return fmt.Errorf("client acknowledged %d, expected %d", a.GetLastSequenceNumber(), last)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func unsubscribed(unsub <-chan struct{}) bool {
	select {
	case <-unsub:
		return true
	default:
		return false
	}
}

// clientHandlerError is a client's report that its handler failed on the
// batch (DurableAck.error).
type clientHandlerError struct{ msg string }

func (e *clientHandlerError) Error() string { return "client handler failed: " + e.msg }

// subscribed describes a new subscription; its start position lets a client
// resume elsewhere without a gap even before its first delivery.
func subscribed(sub contract.Subscription) *factstrv1.Subscribed {
	m := &factstrv1.Subscribed{SubscriptionId: sub.ID()}
	if p, ok := sub.(interface{ StartPosition() uint64 }); ok {
		m.Head = p.StartPosition()
	}
	return m
}

// serialHandler runs h for one batch at a time: a consumer group member's
// partitions call it concurrently, and a durable stream's wire protocol
// matches each ack to the one batch in flight.
func serialHandler(h contract.StreamHandler) contract.StreamHandler {
	var mu sync.Mutex
	return func(ctx context.Context, batch []contract.EventRecord) error {
		mu.Lock()
		defer mu.Unlock()
		if err := ctx.Err(); err != nil {
			// The partition stopped while it waited its turn: not
			// delivered, so its cursor stays before the batch.
			return err
		}
		return h(ctx, batch)
	}
}
