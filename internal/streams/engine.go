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
	s, err := e.newSubscription(ctx, m, handler, nil)
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
	s, err := e.newSubscription(ctx, m, handler, func(s *subscription) {
		s.durable, s.name = true, name
		s.lease = e.newLease(s.ctx, name, fmt.Sprintf("%s/%d", e.cfg.HolderPrefix, s.id))
	})
	if err != nil {
		return nil, err
	}
	acq, err := s.lease.acquire(ctx, query, opts)
	if err != nil {
		// A refusal took nothing. Any other failure (the caller gave up,
		// the leader changed) may still have taken the name for this
		// holder, which no one would ever release: release it, which
		// frees the name only if this very holder has it.
		if !errors.Is(err, contract.ErrDurableNameInUse) && !errors.Is(err, contract.ErrDurableQueryMismatch) &&
			!errors.Is(err, contract.ErrInvalidQuery) && !errors.Is(err, contract.ErrClosed) && !errors.Is(err, contract.ErrPositionAhead) {
			s.lease.release()
		}
		e.remove(s)
		s.cancel(nil)
		return nil, fmt.Errorf("durable stream %q: %w", name, err)
	}
	if !acq.Created && opts.Start.Kind != contract.StartBeginning {
		e.cfg.Logger.Info("durable stream exists: it resumes from its cursor; a start position applies only when a name is created",
			"name", name, "cursor", acq.Cursor, "start_asked", opts.Start.String())
	}
	e.logPolicyKept(name, acq, opts.Failure)
	s.pos = acq.Cursor
	s.cur = startCursor(s.lease, acq.Cursor, s.cancel, e.cfg.Logger)
	s.parking = e.newRetryPark(acq.Failure, s.lease, s.cur)
	if err := s.replay(e.cfg.Hub.Head()); err != nil {
		stored := s.cur.finish()
		s.lease.release()
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

// newSubscription registers a subscription. setup, if not nil, fills in
// what makes it durable (its name and lease) before the engine's readers
// (DurablePositions, LiveLag, the group positions) can see it.
func (e *Engine) newSubscription(ctx context.Context, m *contract.Matcher, h contract.StreamHandler, setup func(*subscription)) (*subscription, error) {
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
		ahead:   readAhead{budget: e.budget},
		done:    make(chan struct{}),
	}
	if setup != nil {
		setup(s)
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
