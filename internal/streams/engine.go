package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Source reads committed batches from a store.
type Source interface {
	// ReadBatches returns the committed batches that hold events with
	// sequence numbers in (after, upTo], filtered by m and grouped as they
	// were committed (a batch with no match is left out), in commit order.
	// It stops after maxBatches returned batches, and before a batch that
	// would take the returned batches' BatchBytes past maxBytes (0: no
	// bound); the first batch is returned whatever its size, since a
	// committed batch is never split. scanned is the sequence number
	// through which the log was examined: upTo when nothing was cut off,
	// else the last sequence number of the last returned batch's committed
	// batch. The next call continues after scanned.
	ReadBatches(ctx context.Context, after, upTo uint64, m *contract.Matcher, maxBatches int, maxBytes int64) (batches [][]contract.EventRecord, scanned uint64, err error)
}

// Durables stores durable stream cursors and holds durable names. In a
// cluster every call goes through the Raft log.
type Durables interface {
	// Acquire takes name for holder, creating it with query (its
	// MinSequenceNumber ignored) and its cursor at start when new, and
	// returns the stored cursor. It fails with contract.ErrDurableNameInUse
	// when another holder has it, contract.ErrDurableQueryMismatch when the
	// query differs and contract.ErrPositionAhead for a new name whose start
	// is past the log. A new name records opts.Start and opts.Failure.
	Acquire(ctx context.Context, name string, query contract.EventQuery, holder string, opts contract.DurableOptions) (AcquireResult, error)
	// Advance moves name's cursor forward to cursor, if holder holds it.
	Advance(ctx context.Context, name, holder string, cursor uint64) error
	// Release frees name if holder holds it.
	Release(ctx context.Context, name, holder string) error
	Parker
}

// AcquireResult is what Durables.Acquire found or made.
type AcquireResult struct {
	Cursor  uint64
	Created bool // the name is new: its cursor starts where start said
	// Failure is the failure policy recorded with the name (for a name that
	// existed, its own, whatever was asked).
	Failure contract.FailurePolicy
}

// ErrSubscriberTooSlow ends a live subscription whose handler held a
// delivery for longer than Config.StallTimeout (its client does not read).
// Nothing is lost: the subscriber resumes after the last event it received.
var ErrSubscriberTooSlow = errors.New("subscriber too slow: it did not take a delivery in time")

var (
	errHubClosed = errors.New("stream hub closed")
	errStopped   = errors.New("subscription stopped")
)

// Config configures an Engine. Source and Hub are required.
type Config struct {
	Source   Source
	Hub      *Hub
	Durables Durables // nil: durable streams are refused
	// HolderPrefix names this process in durable name leases, so a cluster
	// can tell which node holds a name.
	HolderPrefix string
	Logger       *slog.Logger
	// MaxBatchesPerRead bounds one read from the Source (default 128).
	MaxBatchesPerRead int
	// SubscriberBytes bounds, in BatchBytes, what one subscription holds
	// read but not yet delivered (default DefaultSubscriberBytes). A
	// committed batch larger than it is still read, alone.
	SubscriberBytes int64
	// NodeBytes bounds what all subscriptions of the engine hold together:
	// a subscription waits for its share before it reads (0: no bound).
	NodeBytes int64
	// StallTimeout is how long a handler may hold one delivery. Past it a
	// live subscription ends with ErrSubscriberTooSlow and a durable one
	// drops what it read ahead, to read it again once the handler returns
	// (its handler waits for the client's acknowledgement, which may
	// rightly take long). 0: never.
	StallTimeout time.Duration
	// CursorTimeout bounds one cursor advance or release (default 10s).
	CursorTimeout time.Duration
	// RetryBackoff is the pause after a failed read before trying again
	// (default 100ms).
	RetryBackoff time.Duration
	// IdleRecord is how long a durable subscription that is caught up, but
	// whose cursor is behind what it has read (events after it did not
	// match its query), waits for the next commit before it records that
	// position as its cursor (default 1s). Its lag is then 0, and a
	// later subscription does not read those events again; waiting first
	// keeps a filtered stream under a steady append rate from writing a
	// cursor for every commit.
	IdleRecord time.Duration
	// ParkedPoll is how often a durable subscription whose policy parks
	// looks for parked events an operator asked to redeliver (default 1s).
	ParkedPoll time.Duration
	// OnRedelivery, if set, is called for every delivery of a durable
	// batch after a handler failure; OnParked when a durable stream parks
	// events (metrics).
	OnRedelivery func(name string)
	OnParked     func(name string, events int)
}

// DefaultSubscriberBytes is Config.SubscriberBytes' default.
const DefaultSubscriberBytes = 8 << 20

// Engine runs the subscriptions of one store.
type Engine struct {
	cfg    Config
	budget *budget
	nextID atomic.Uint64

	mu     sync.Mutex
	subs   map[uint64]*subscription
	closed bool

	done      chan struct{} // closed by Close: ends background releases
	closeOnce sync.Once
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatchesPerRead <= 0 {
		cfg.MaxBatchesPerRead = 128
	}
	if cfg.CursorTimeout <= 0 {
		cfg.CursorTimeout = 10 * time.Second
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.IdleRecord <= 0 {
		cfg.IdleRecord = time.Second
	}
	if cfg.ParkedPoll <= 0 {
		cfg.ParkedPoll = time.Second
	}
	if cfg.HolderPrefix == "" {
		cfg.HolderPrefix = "local"
	}
	if cfg.SubscriberBytes <= 0 {
		cfg.SubscriberBytes = DefaultSubscriberBytes
	}
	if cfg.NodeBytes > 0 {
		cfg.SubscriberBytes = min(cfg.SubscriberBytes, cfg.NodeBytes)
	}
	return &Engine{cfg: cfg, budget: newBudget(cfg.NodeBytes), subs: make(map[uint64]*subscription), done: make(chan struct{})}
}

// HeldBytes returns the BatchBytes all subscriptions hold read but not yet
// delivered.
func (e *Engine) HeldBytes() int64 { return e.budget.held() }

// DurablePositions returns, for each durable subscription, the sequence
// number through which it has handled or passed the log: its lag is the
// head minus that, 0 when it is caught up even if its last match is
// older.
func (e *Engine) DurablePositions() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]uint64)
	for _, s := range e.subs {
		if s.durable {
			out[s.name] = max(out[s.name], s.progress.Load())
		}
	}
	groupPositions(out)
	return out
}

// Count returns the number of active subscriptions.
func (e *Engine) Count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Live starts a live subscription (StreamAll / StreamTo). With
// query.MinSequenceNumber > 0, or catchUp set, it is a catch-up
// subscription: the batches after MinSequenceNumber (0: every batch) are
// delivered before Live returns. catchUp exists for a client that resumes
// a stream which started on an empty log: its position is 0, and 0 alone
// means "from now".
func (e *Engine) Live(ctx context.Context, query contract.EventQuery, catchUp bool, handler contract.StreamHandler) (contract.Subscription, error) {
	m, err := contract.NewMatcher(query)
	if err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: stream handler must not be nil", contract.ErrInvalidQuery)
	}
	s, err := e.newSubscription(ctx, m, handler)
	if err != nil {
		return nil, err
	}
	head := e.cfg.Hub.Head()
	s.pos = head
	if query.MinSequenceNumber > 0 || catchUp {
		if query.MinSequenceNumber > head {
			e.remove(s)
			s.cancel(nil)
			return nil, fmt.Errorf("%w: catch-up from %d requested, the log ends at %d", contract.ErrPositionAhead, query.MinSequenceNumber, head)
		}
		s.pos = query.MinSequenceNumber
		if err := s.replay(head); err != nil && !errors.Is(err, errStopped) {
			e.remove(s)
			s.cancel(nil)
			return nil, fmt.Errorf("catch-up stream from %d: %w", query.MinSequenceNumber, err)
		}
	}
	s.start = s.pos
	s.goLive()
	return s, nil
}

// Durable starts a durable subscription: it replays from the name's cursor
// before returning, then continues live.
func (e *Engine) Durable(ctx context.Context, name string, query contract.EventQuery, handler contract.StreamHandler, opts contract.DurableOptions) (contract.Subscription, error) {
	if e.cfg.Durables == nil {
		return nil, errors.New("durable streams are not supported by this store")
	}
	if opts.Group != nil {
		if opts.Failure.Parks() {
			// Partitions are created with the group, and carry no policy
			// of their own yet: refuse rather than stop where the caller
			// asked to park.
			return nil, fmt.Errorf("%w: a consumer group has the stop failure policy; retry then park is for plain durable names", contract.ErrInvalidQuery)
		}
		return e.group(ctx, name, query, handler, opts)
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	if err := opts.Start.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Failure.Validate(); err != nil {
		return nil, err
	}
	opts.Failure = opts.Failure.Normalized()
	if handler == nil {
		return nil, fmt.Errorf("%w: stream handler must not be nil", contract.ErrInvalidQuery)
	}
	query.MinSequenceNumber = 0
	m, err := contract.NewMatcher(query)
	if err != nil {
		return nil, err
	}
	s, err := e.newSubscription(ctx, m, handler)
	if err != nil {
		return nil, err
	}
	s.durable = true
	s.name = name
	s.holder = fmt.Sprintf("%s/%d", e.cfg.HolderPrefix, s.id)
	acq, err := e.cfg.Durables.Acquire(ctx, name, query, s.holder, opts)
	if err != nil {
		// A refusal took nothing. Any other failure (the caller gave up,
		// the leader changed) may still have taken the name for this
		// holder, which no one would ever release: release it, which
		// frees the name only if this very holder has it.
		if !errors.Is(err, contract.ErrDurableNameInUse) && !errors.Is(err, contract.ErrDurableQueryMismatch) &&
			!errors.Is(err, contract.ErrInvalidQuery) && !errors.Is(err, contract.ErrClosed) && !errors.Is(err, contract.ErrPositionAhead) {
			s.release()
		}
		e.remove(s)
		s.cancel(nil)
		return nil, fmt.Errorf("durable stream %q: %w", name, err)
	}
	if !acq.Created && opts.Start.Kind != contract.StartBeginning {
		e.cfg.Logger.Info("durable stream exists: it resumes from its cursor; a start position applies only when a name is created",
			"name", name, "cursor", acq.Cursor, "start_asked", opts.Start.String())
	}
	s.failure = acq.Failure.Normalized()
	e.logPolicyKept(name, acq, opts.Failure)
	cursor := acq.Cursor
	s.pos = cursor
	s.startCursor(cursor)
	if err := s.replay(e.cfg.Hub.Head()); err != nil {
		stored := s.finishCursor()
		s.release()
		e.remove(s)
		s.cancel(nil)
		if errors.Is(err, errStopped) {
			err = contract.ErrClosed
		}
		return nil, fmt.Errorf("durable stream %q replay stopped, cursor at %d: %w", name, stored, err)
	}
	s.start = s.pos
	s.progress.Store(s.pos)
	s.goLive()
	return s, nil
}

// Close ends every subscription and refuses new ones. It waits for running
// handlers, except one that called Close itself.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { close(e.done) })
	for _, s := range e.closeSubs() {
		s.stop(contract.ErrClosed)
	}
}

// closeSubs refuses new subscriptions and returns the running ones.
func (e *Engine) closeSubs() []*subscription {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	subs := make([]*subscription, 0, len(e.subs))
	for _, s := range e.subs {
		subs = append(subs, s)
	}
	return subs
}

func (e *Engine) newSubscription(ctx context.Context, m *contract.Matcher, h contract.StreamHandler) (*subscription, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, contract.ErrClosed
	}
	sctx, cancel := context.WithCancelCause(ctx)
	s := &subscription{
		e:       e,
		id:      e.nextID.Add(1),
		parent:  ctx,
		ctx:     sctx,
		cancel:  cancel,
		handler: h,
		matcher: m,
		done:    make(chan struct{}),
	}
	e.subs[s.id] = s
	e.cfg.Hub.followers.Add(1)
	return s, nil
}

func (e *Engine) remove(s *subscription) {
	e.mu.Lock()
	if _, ok := e.subs[s.id]; ok {
		delete(e.subs, s.id)
		e.cfg.Hub.followers.Add(-1)
	}
	e.mu.Unlock()
}

type subscription struct {
	e       *Engine
	id      uint64
	parent  context.Context // the Stream* call's: its end is the stream's Err
	ctx     context.Context
	cancel  context.CancelCauseFunc
	handler contract.StreamHandler
	matcher *contract.Matcher

	durable      bool
	name, holder string
	filter       func(contract.EventRecord) bool // a group partition's share of the matches; nil: all
	failure      contract.FailurePolicy          // durable: the name's recorded policy
	parkedPolled time.Time                       // when redeliverParked last looked; owned by the delivering goroutine

	start    uint64        // position when the subscription went live; immutable after
	pos      uint64        // scanned through; owned by the delivering goroutine
	progress atomic.Uint64 // pos once everything read up to it was delivered
	cur      cursorState   // durable: acknowledged and stored cursor, and its flusher

	mu        sync.Mutex
	stopped   bool
	stopCause error // why stopped was set: nil for Unsubscribe, ErrClosed for Close
	err       error // why the stream ended; set before done is closed
	// ahead holds the batches read and not yet taken for delivery (taken
	// ones are set to nil); a stall may drop them, and sets reclaimed.
	ahead     [][]contract.EventRecord
	reclaimed bool
	// inHandler is set while the handler runs: an Unsubscribe then does
	// not wait, since it may come from that very handler.
	inHandler bool
	done      chan struct{}
	started   bool
}

func (s *subscription) ID() uint64 { return s.id }

// Done is closed when the subscription has ended, whether by Unsubscribe,
// its ctx, Close, a durable handler failure or a lost durable lease. A
// server relaying the stream ends its RPC on it.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Err tells why the subscription ended: nil while it runs and after
// Unsubscribe; otherwise the ctx's cause, contract.ErrClosed,
// ErrSubscriberTooSlow, contract.ErrDurableLeaseLost, or a durable
// handler's failure (contract.ErrHandlerFailed).
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// StartPosition is the sequence number through which the log was delivered
// (or skipped) when the subscription went live: a client that loses its
// connection before any delivery resumes after it.
func (s *subscription) StartPosition() uint64 { return s.start }

// Unsubscribe stops future deliveries. While no handler call is running it
// waits until the stream has ended (a durable name is released); while one
// is, it returns at once, since it may be called from inside that handler,
// and Done is closed once the call has returned (its nil still moves a
// durable cursor) and the name is released.
func (s *subscription) Unsubscribe() { s.stop(nil) }

// stop ends the subscription for cause (nil: Unsubscribe) and, unless a
// handler call is running, waits until it has ended. The first stop
// decides the cause.
func (s *subscription) stop(cause error) {
	s.halt(cause)
	s.mu.Lock()
	started, busy := s.started, s.inHandler
	s.mu.Unlock()
	if !started || busy {
		return
	}
	<-s.done
}

// end stops s and waits until it has ended, a handler call in flight
// included. Only for the engine's own goroutines (a consumer group's
// balancing), which never run a handler: an Unsubscribe from inside a
// member's handler must still find the partitions' cursors stored once
// the member is done.
func (s *subscription) end(cause error) {
	s.halt(cause)
	s.waitEnded(context.Background())
}

func (s *subscription) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// goLive starts the live loop. started is set before the goroutine runs,
// so an Unsubscribe right after Live or Durable returned waits for the loop
// to end (and a durable name to be released) instead of returning at once.
func (s *subscription) goLive() {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	go s.live()
}

func (s *subscription) live() {
	defer close(s.done)
	defer s.e.remove(s)
	defer s.cancel(nil)
	err := s.run(0)
	if s.durable {
		s.finishCursor()
		s.release()
	}
	if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) && !errors.Is(err, errHubClosed) && !errors.Is(err, ErrSubscriberTooSlow) {
		s.e.cfg.Logger.Warn("stream ended", "subscription", s.id, "durable", s.name, "error", err)
	}
	reason := s.endReason(err)
	s.mu.Lock()
	s.err = reason
	s.mu.Unlock()
}

// endReason maps how run ended to what Err reports.
func (s *subscription) endReason(runErr error) error {
	s.mu.Lock()
	stopped, cause := s.stopped, s.stopCause
	s.mu.Unlock()
	switch {
	case stopped:
		return cause
	case runErr == nil:
		return nil
	case errors.Is(runErr, ErrSubscriberTooSlow):
		return ErrSubscriberTooSlow
	case s.parent.Err() != nil:
		return context.Cause(s.parent)
	case errors.Is(runErr, errHubClosed), errors.Is(runErr, contract.ErrClosed):
		return contract.ErrClosed
	}
	return runErr
}

// replay delivers the batches after s.pos through until. Unlike run, an
// until of 0 (an empty log) means nothing to replay, not "run live".
func (s *subscription) replay(until uint64) error {
	if until <= s.pos {
		return nil
	}
	return s.run(until)
}

// run delivers batches after s.pos. With until > 0 it returns once pos
// reaches until (replay); with until == 0 it runs until stopped.
func (s *subscription) run(until uint64) error {
	defer s.dropAhead()
	for {
		if s.isStopped() {
			return errStopped
		}
		// A cancelled ctx ends the stream even when the hub or the source
		// would still answer (a batch committed right after the cancel
		// must not be delivered).
		if err := s.ctxErr(); err != nil {
			return err
		}
		if until != 0 && s.pos >= until {
			return nil
		}
		upTo := until
		if until == 0 {
			if s.parks() {
				if err := s.redeliverParked(); err != nil {
					return err
				}
			}
			if s.durable && s.pos > s.ackedCursor() {
				recorded, err := s.recordWhenIdle()
				if err != nil {
					return err
				}
				if recorded {
					continue
				}
			}
			head, err := s.waitHead()
			if errors.Is(err, errPoll) {
				continue
			}
			if err != nil {
				if cerr := s.ctxErr(); cerr != nil {
					return cerr
				}
				return err
			}
			upTo = head
		}
		grant, err := s.e.budget.acquire(s.ctx, s.e.cfg.SubscriberBytes)
		if err != nil {
			return err
		}
		batches, scanned, err := s.read(upTo, grant)
		if err != nil {
			s.e.budget.add(-grant)
			if cerr := s.ctxErr(); cerr != nil {
				return cerr
			}
			if errors.Is(err, contract.ErrClosed) {
				return err
			}
			s.e.cfg.Logger.Warn("stream read failed, retrying", "subscription", s.id, "error", err)
			select {
			case <-time.After(s.e.cfg.RetryBackoff):
				continue
			case <-s.ctx.Done():
				return s.ctxErr()
			}
		}
		if s.filter != nil {
			batches = filterBatches(batches, s.filter)
		}
		s.hold(batches, grant)
		last, reclaimed, err := s.deliverAhead()
		if err != nil {
			return err
		}
		if reclaimed {
			// The batches after last were dropped unread: read again after
			// it. The rest of last's committed batch holds no match (a
			// delivery is every match of one committed batch).
			s.pos = max(s.pos, last)
			continue
		}
		if scanned > s.pos {
			s.pos = scanned
		}
		s.progress.Store(s.pos)
	}
}

// read returns the batches after s.pos through upTo: from the hub's
// recent batches when it keeps them all (a caught-up subscription), else
// from the store.
func (s *subscription) read(upTo uint64, grant int64) ([][]contract.EventRecord, uint64, error) {
	if batches, scanned, ok := s.e.cfg.Hub.Recent(s.pos, upTo, s.matcher, s.e.cfg.MaxBatchesPerRead, grant); ok {
		return batches, scanned, nil
	}
	return s.e.cfg.Source.ReadBatches(s.ctx, s.pos, upTo, s.matcher, s.e.cfg.MaxBatchesPerRead, grant)
}

// recordWhenIdle waits up to IdleRecord for a commit after pos. If none
// comes, it records pos as the cursor (nothing up to it matched after the
// last delivery) and reports true.
func (s *subscription) recordWhenIdle() (bool, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.e.cfg.IdleRecord)
	defer cancel()
	_, err := s.e.cfg.Hub.Wait(ctx, s.pos)
	if err == nil || s.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return false, nil // a commit came (or the stream ends): the main wait sees it
	}
	s.ack(s.pos)
	return true, nil
}

// ctxErr is the reason s.ctx ended (ErrSubscriberTooSlow after a stall), or
// nil while it runs.
func (s *subscription) ctxErr() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// hold keeps a read's batches for delivery and settles the node budget from
// the grant to what they cost.
func (s *subscription) hold(batches [][]contract.EventRecord, grant int64) {
	n := int64(0)
	for _, b := range batches {
		n += BatchBytes(b)
	}
	s.e.budget.add(n - grant)
	s.mu.Lock()
	s.ahead, s.reclaimed = batches, false
	s.mu.Unlock()
}

// deliverAhead delivers the held batches in order. last is the last
// sequence number delivered; reclaimed says a stall dropped the rest.
func (s *subscription) deliverAhead() (last uint64, reclaimed bool, err error) {
	for i := 0; ; i++ {
		s.mu.Lock()
		if s.reclaimed {
			s.reclaimed = false
			s.mu.Unlock()
			return last, true, nil
		}
		if i >= len(s.ahead) {
			s.ahead = nil
			s.mu.Unlock()
			return last, false, nil
		}
		b := s.ahead[i]
		s.ahead[i] = nil // from here the batch is the handler's, not read-ahead
		s.mu.Unlock()
		err := s.deliverOne(b)
		s.e.budget.add(-BatchBytes(b))
		if err != nil {
			return last, false, err
		}
		last = b[len(b)-1].SequenceNumber
	}
}

func (s *subscription) deliverOne(b []contract.EventRecord) error {
	if s.isStopped() {
		return errStopped
	}
	if err := s.ctxErr(); err != nil {
		return err
	}
	if s.durable && s.parks() {
		parked, err := s.deliverRetrying(b, false)
		if err == nil && !parked {
			s.ack(b[len(b)-1].SequenceNumber)
		}
		return err
	}
	herr := s.deliverTimed(b, contract.Delivery{Attempt: 1})
	if errors.Is(herr, errStopped) {
		return herr
	}
	if herr != nil {
		if s.durable {
			return fmt.Errorf("%w on the batch ending at %d: %w", contract.ErrHandlerFailed, b[len(b)-1].SequenceNumber, herr)
		}
		if err := s.ctxErr(); err != nil {
			return err
		}
		s.e.cfg.Logger.Debug("live stream handler failed; stream goes on", "subscription", s.id, "error", herr)
		return nil
	}
	if s.durable {
		s.ack(b[len(b)-1].SequenceNumber)
	}
	return nil
}

// stalled runs when a handler held one delivery past StallTimeout: the
// read-ahead is dropped, so a subscriber that does not take its deliveries
// holds at most the batch in its handler; a live subscription also ends.
func (s *subscription) stalled() {
	s.mu.Lock()
	dropped := s.dropAheadLocked()
	s.mu.Unlock()
	if s.durable {
		if dropped > 0 {
			s.e.cfg.Logger.Info("durable stream handler is slow; dropped its read-ahead", "subscription", s.id, "durable", s.name, "bytes", dropped)
		}
		return
	}
	s.e.cfg.Logger.Warn("live stream ended: its handler held a delivery too long", "subscription", s.id, "stall_timeout", s.e.cfg.StallTimeout)
	s.cancel(ErrSubscriberTooSlow)
}

func (s *subscription) dropAhead() {
	s.mu.Lock()
	s.dropAheadLocked()
	s.reclaimed = false
	s.mu.Unlock()
}

func (s *subscription) dropAheadLocked() int64 {
	if s.ahead == nil {
		return 0
	}
	n := int64(0)
	for _, b := range s.ahead {
		n += BatchBytes(b)
	}
	s.ahead, s.reclaimed = nil, true
	s.e.budget.add(-n)
	return n
}

// deliverTimed delivers batch once, under the stall timer.
func (s *subscription) deliverTimed(batch []contract.EventRecord, d contract.Delivery) error {
	var stall *time.Timer
	if s.e.cfg.StallTimeout > 0 {
		stall = time.AfterFunc(s.e.cfg.StallTimeout, s.stalled)
	}
	herr := s.deliver(batch, d)
	if stall != nil {
		stall.Stop()
	}
	return herr
}

// deliver calls the handler, unless the subscription was stopped: the
// check and inHandler are set under one lock, so an Unsubscribe either
// waits for the stream to end or knows a handler call is running.
func (s *subscription) deliver(batch []contract.EventRecord, d contract.Delivery) (err error) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStopped
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
	return s.handler(contract.WithDelivery(s.ctx, d), batch)
}

func (s *subscription) advance(cursor uint64) error {
	// The handler's ctx may already be cancelled (Unsubscribe from inside the
	// handler), yet its nil return must still move the cursor.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.e.cfg.CursorTimeout)
	defer cancel()
	if err := s.e.cfg.Durables.Advance(ctx, s.name, s.holder, cursor); err != nil {
		return fmt.Errorf("advance cursor to %d: %w", cursor, err)
	}
	return nil
}

// release frees the durable name for the next subscriber. A release that
// cannot commit now (no leader for a while, say) is retried in the
// background until it does or the engine closes: the name would otherwise
// stay held by a subscription that no longer exists (found by the fault
// suite: a node that restarted into an election held a name for minutes).
// Releasing is idempotent and only ever frees this holder's lease.
func (s *subscription) release() {
	if s.tryRelease() {
		return
	}
	go func() {
		backoff := 500 * time.Millisecond
		for {
			select {
			case <-s.e.done:
				return
			case <-time.After(backoff):
			}
			if s.tryRelease() {
				s.e.cfg.Logger.Info("durable stream released after retrying", "name", s.name)
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
}

func (s *subscription) tryRelease() bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.e.cfg.CursorTimeout)
	defer cancel()
	err := s.e.cfg.Durables.Release(ctx, s.name, s.holder)
	if err == nil || errors.Is(err, contract.ErrClosed) {
		return true
	}
	s.e.cfg.Logger.Warn("durable stream release failed; retrying", "name", s.name, "error", err)
	return false
}

type catchUpCtx struct{}
