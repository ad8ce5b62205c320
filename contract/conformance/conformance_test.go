package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
)

// TestReferenceStore proves the suite passes against a simple, correct store.
func TestReferenceStore(t *testing.T) {
	conformance.Run(t, func(t *testing.T) contract.EventStore { return newRefStore() })
}

// refStore is a mutex-and-slice store that implements every rule of the
// contract as plainly as possible. Each subscription has its own delivery
// goroutine fed by an unbounded queue.
type refStore struct {
	mu      sync.Mutex
	closed  bool
	batches [][]contract.EventRecord
	last    uint64
	nextID  uint64
	subs    map[uint64]*refSub
	durable map[string]*durableState
}

type durableState struct {
	query    contract.EventQuery
	start    contract.StartPosition
	queryKey string
	cursor   uint64
	holder   *refSub
	created  time.Time
	lastAck  time.Time
}

func newRefStore() *refStore {
	return &refStore{subs: map[uint64]*refSub{}, durable: map[string]*durableState{}}
}

var _ contract.EventStore = (*refStore)(nil)

func (s *refStore) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	return s.appendIf(events, nil, 0)
}

func (s *refStore) AppendIf(ctx context.Context, events []contract.NewEvent, q contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	return s.appendIf(events, &q, expected)
}

func (s *refStore) appendIf(events []contract.NewEvent, q *contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return contract.AppendResult{}, contract.ErrClosed
	}
	if err := contract.ValidateEvents(events, contract.DefaultLimits); err != nil {
		return contract.AppendResult{}, err
	}
	if q != nil {
		m, err := contract.NewMatcher(*q)
		if err != nil {
			return contract.AppendResult{}, err
		}
		if v := s.versionLocked(m); v != expected {
			return contract.AppendResult{}, &contract.ConflictError{Expected: expected, Actual: v}
		}
	}
	now := time.Now()
	batch := make([]contract.EventRecord, len(events))
	for i, e := range events {
		s.last++
		batch[i] = contract.EventRecord{SequenceNumber: s.last, OccurredAt: now, Type: e.Type, Payload: slices.Clone(e.Payload)}
	}
	s.batches = append(s.batches, batch)
	for _, sub := range s.subs {
		if f := filterBatch(sub.m, batch, 0); len(f) > 0 {
			sub.offer(f)
		} else if sub.durable != nil && sub.durable.holder == sub && sub.idle() {
			// Caught up and nothing to deliver: the cursor passes the batch.
			sub.durable.cursor = s.last
		}
	}
	return contract.AppendResult{FirstSequenceNumber: batch[0].SequenceNumber, LastSequenceNumber: s.last, CommittedCount: uint64(len(batch))}, nil
}

func (s *refStore) versionLocked(m *contract.Matcher) uint64 {
	var v uint64
	for _, b := range s.batches {
		for _, r := range b {
			if m.Match(r.Type, r.Payload) {
				v = r.SequenceNumber
			}
		}
	}
	return v
}

func filterBatch(m *contract.Matcher, batch []contract.EventRecord, after uint64) []contract.EventRecord {
	var out []contract.EventRecord
	for _, r := range batch {
		if r.SequenceNumber > after && m.Match(r.Type, r.Payload) {
			out = append(out, r)
		}
	}
	return out
}

func (s *refStore) Query(ctx context.Context, q contract.EventQuery) (contract.QueryResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return contract.QueryResult{}, contract.ErrClosed
	}
	m, err := contract.NewMatcher(q)
	if err != nil {
		return contract.QueryResult{}, err
	}
	var res contract.QueryResult
	for _, b := range s.batches {
		for _, r := range b {
			if !m.Match(r.Type, r.Payload) {
				continue
			}
			res.CurrentContextVersion = r.SequenceNumber
			if r.SequenceNumber > q.MinSequenceNumber {
				res.Events = append(res.Events, r)
				res.LastReturnedSequenceNumber = r.SequenceNumber
			}
		}
	}
	return res, nil
}

func (s *refStore) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return s.subscribe(ctx, "", false, contract.EventQuery{}, h, contract.DurableOptions{})
}

func (s *refStore) StreamTo(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	return s.subscribe(ctx, "", false, q, h, contract.DurableOptions{})
}

func (s *refStore) StreamAllDurable(ctx context.Context, name string, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return s.subscribe(ctx, name, true, contract.EventQuery{}, h, contract.NewDurableOptions(opts...))
}

func (s *refStore) StreamToDurable(ctx context.Context, name string, q contract.EventQuery, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return s.subscribe(ctx, name, true, q, h, contract.NewDurableOptions(opts...))
}

// queryKey identifies a durable stream's query, ignoring MinSequenceNumber.
func queryKey(q contract.EventQuery) string {
	if len(q.Filters) == 0 {
		return "all"
	}
	b, err := json.Marshal(q.Filters)
	if err != nil {
		return fmt.Sprint(q.Filters)
	}
	return string(b)
}

func (s *refStore) subscribe(ctx context.Context, name string, durable bool, q contract.EventQuery, h contract.StreamHandler, opts contract.DurableOptions) (contract.Subscription, error) {
	m, err := contract.NewMatcher(q)
	if err != nil {
		return nil, err
	}
	if durable {
		if err := contract.ValidateDurableName(name); err != nil {
			return nil, err
		}
		if opts.Group != nil {
			return nil, fmt.Errorf("consumer groups: %w", errors.ErrUnsupported)
		}
		if err := opts.Failure.Validate(); err != nil {
			return nil, err
		}
		if opts.Failure.Parks() {
			return nil, fmt.Errorf("the reference store has only the stop failure policy: %w", errors.ErrUnsupported)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, contract.ErrClosed
	}
	if head := s.last; !durable && q.MinSequenceNumber > head {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: catch-up from %d requested, the log ends at %d", contract.ErrPositionAhead, q.MinSequenceNumber, head)
	}
	subCtx, cancel := context.WithCancel(ctx)
	sub := &refSub{st: s, m: m, handler: h, parent: ctx, ctx: subCtx, cancel: cancel, done: make(chan struct{})}
	sub.cond = sync.NewCond(&sub.mu)
	from, replay := q.MinSequenceNumber, q.MinSequenceNumber > 0
	if durable {
		key := queryKey(q)
		d := s.durable[name]
		switch {
		case d == nil:
			d = &durableState{queryKey: key, query: contract.EventQuery{Filters: q.Filters}, start: opts.Start, created: time.Now()}
			switch opts.Start.Kind {
			case contract.StartEnd:
				d.cursor = s.last
			case contract.StartAfterSequence:
				if opts.Start.After > s.last {
					s.mu.Unlock()
					cancel()
					return nil, fmt.Errorf("durable stream %q: %w", name, contract.ErrPositionAhead)
				}
				d.cursor = opts.Start.After
			}
			s.durable[name] = d
		case d.queryKey != key:
			s.mu.Unlock()
			cancel()
			return nil, fmt.Errorf("durable stream %q: %w", name, contract.ErrDurableQueryMismatch)
		case d.holder != nil:
			s.mu.Unlock()
			cancel()
			return nil, fmt.Errorf("durable stream %q: %w", name, contract.ErrDurableNameInUse)
		}
		d.holder, sub.durable = sub, d
		from, replay = d.cursor, true
	}
	var pending [][]contract.EventRecord
	if replay {
		for _, b := range s.batches {
			if f := filterBatch(m, b, from); len(f) > 0 {
				pending = append(pending, f)
			}
		}
	}
	s.nextID++
	sub.id = s.nextID
	s.subs[sub.id] = sub
	s.mu.Unlock()

	// Replay in the caller's goroutine; live batches queue up meanwhile and
	// the delivery goroutine starts only afterwards, so calls never overlap.
	for _, b := range pending {
		if !sub.begin() {
			break
		}
		if err := sub.deliver(b); err != nil && durable {
			sub.end()
			return nil, fmt.Errorf("durable stream %q: replay stopped at sequence %d: %w", name, b[0].SequenceNumber, err)
		}
	}
	go sub.run()
	context.AfterFunc(ctx, func() { sub.stop(context.Cause(ctx)); sub.Unsubscribe() })
	return sub, nil
}

func (s *refStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return contract.ErrClosed
	}
	s.closed = true
	subs := s.subs
	s.subs = map[uint64]*refSub{}
	for _, d := range s.durable {
		d.holder = nil
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.stop(contract.ErrClosed)
	}
	return nil
}

type refSub struct {
	st      *refStore
	id      uint64
	m       *contract.Matcher
	handler contract.StreamHandler
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelFunc
	durable *durableState
	done    chan struct{}

	mu        sync.Mutex
	cond      *sync.Cond
	queue     [][]contract.EventRecord
	stopped   bool
	stopCause error // nil for Unsubscribe
	err       error // why the stream ended, set before done is closed
	running   bool  // a handler call is in flight
}

func (sub *refSub) ID() uint64 { return sub.id }

func (sub *refSub) Done() <-chan struct{} { return sub.done }

func (sub *refSub) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// idle reports whether nothing is queued or running.
func (sub *refSub) idle() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.queue) == 0 && !sub.running
}

func (sub *refSub) offer(b []contract.EventRecord) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.stopped {
		sub.queue = append(sub.queue, b)
		sub.cond.Broadcast()
	}
}

// begin marks a handler call in flight unless the subscription ended.
func (sub *refSub) begin() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.stopped || sub.ctx.Err() != nil {
		return false
	}
	sub.running = true
	return true
}

// deliver calls the handler (begin was called), advances a durable cursor on
// success, and ends the in-flight mark.
func (sub *refSub) deliver(b []contract.EventRecord) error {
	err := sub.call(b)
	if err == nil && sub.durable != nil {
		sub.st.mu.Lock()
		if sub.durable.holder == sub {
			sub.durable.cursor = max(sub.durable.cursor, b[len(b)-1].SequenceNumber)
			sub.durable.lastAck = time.Now()
		} else {
			err = contract.ErrDurableLeaseLost // reset or deleted with force
		}
		sub.st.mu.Unlock()
	}
	sub.mu.Lock()
	sub.running = false
	sub.cond.Broadcast()
	sub.mu.Unlock()
	return err
}

func (sub *refSub) call(b []contract.EventRecord) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stream handler panicked: %v", r)
		}
	}()
	return sub.handler(contract.WithDelivery(sub.ctx, contract.Delivery{Attempt: 1}), b)
}

func (sub *refSub) run() {
	reason := sub.loop()
	sub.mu.Lock()
	if sub.stopped {
		reason = sub.stopCause
	}
	sub.err = reason
	sub.mu.Unlock()
	sub.end()
	close(sub.done)
}

// loop delivers until the subscription stops (nil) or a durable handler
// fails (its error).
func (sub *refSub) loop() error {
	for {
		sub.mu.Lock()
		for len(sub.queue) == 0 && !sub.stopped {
			sub.cond.Wait()
		}
		if sub.stopped || sub.ctx.Err() != nil {
			sub.mu.Unlock()
			return context.Cause(sub.parent)
		}
		b := sub.queue[0]
		sub.queue = sub.queue[1:]
		sub.running = true
		sub.mu.Unlock()
		if err := sub.deliver(b); errors.Is(err, contract.ErrDurableLeaseLost) {
			return err
		} else if err != nil && sub.durable != nil {
			return fmt.Errorf("%w: %w", contract.ErrHandlerFailed, err) // a durable stream stops on failure; end frees the name
		}
	}
}

// stop ends deliveries without waiting; the first stop's cause is Err.
func (sub *refSub) stop(cause error) {
	sub.mu.Lock()
	if !sub.stopped {
		sub.stopCause = cause
	}
	sub.stopped = true
	sub.queue = nil
	sub.cond.Broadcast()
	sub.mu.Unlock()
	sub.cancel()
}

// release removes the subscription from the store and frees its name.
func (sub *refSub) release() {
	st := sub.st
	st.mu.Lock()
	delete(st.subs, sub.id)
	if sub.durable != nil && sub.durable.holder == sub {
		sub.durable.holder = nil
	}
	st.mu.Unlock()
}

func (sub *refSub) end() {
	sub.stop(nil)
	sub.release()
}

// Unsubscribe stops deliveries. With no handler call in flight it frees
// the name at once; with one (it may be the caller) it returns, and the
// delivery goroutine frees the name once the handler returned (and the
// cursor advanced).
func (sub *refSub) Unsubscribe() {
	sub.stop(nil)
	sub.mu.Lock()
	busy := sub.running
	sub.mu.Unlock()
	if !busy {
		sub.release()
	}
}

var _ contract.DurableAdmin = (*refStore)(nil)

func (s *refStore) infoLocked(name string, d *durableState) contract.DurableInfo {
	info := contract.DurableInfo{Name: name, Query: d.query, Start: d.start, Cursor: d.cursor, Head: s.last,
		Lag: contract.DurableLag(s.last, d.cursor), Created: d.created, LastAck: d.lastAck}
	m, err := contract.NewMatcher(contract.EventQuery{Filters: d.query.Filters})
	if err == nil {
	pending:
		for _, b := range s.batches {
			for _, e := range b {
				if e.SequenceNumber > d.cursor && m.Match(e.Type, e.Payload) {
					info.LagTime = contract.DurableLagTime(time.Now(), e.OccurredAt)
					break pending
				}
			}
		}
	}
	if d.holder != nil {
		info.Holder = fmt.Sprintf("ref/%d", d.holder.id)
	}
	return info
}

func (s *refStore) ListDurable(ctx context.Context) ([]contract.DurableInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, contract.ErrClosed
	}
	out := []contract.DurableInfo{}
	for name, d := range s.durable {
		out = append(out, s.infoLocked(name, d))
	}
	slices.SortFunc(out, func(a, b contract.DurableInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *refStore) GetDurable(ctx context.Context, name string) (contract.DurableInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return contract.DurableInfo{}, contract.ErrClosed
	}
	d, ok := s.durable[name]
	if !ok {
		return contract.DurableInfo{}, contract.ErrDurableNotFound
	}
	return s.infoLocked(name, d), nil
}

func (s *refStore) ResetDurable(ctx context.Context, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.adminLocked(name, force)
	if err != nil {
		return contract.DurableInfo{}, err
	}
	switch to.Kind {
	case contract.StartBeginning:
		d.cursor = 0
	case contract.StartEnd:
		d.cursor = s.last
	case contract.StartAfterSequence:
		if to.After > s.last {
			return contract.DurableInfo{}, contract.ErrPositionAhead
		}
		d.cursor = to.After
	}
	d.holder = nil
	return s.infoLocked(name, d), nil
}

func (s *refStore) DeleteDurable(ctx context.Context, name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.adminLocked(name, force)
	if err != nil {
		return err
	}
	d.holder = nil
	delete(s.durable, name)
	return nil
}

// The reference store does not park (subscribing with a parking policy
// is refused), so its parked lists are empty.
func (s *refStore) ListParked(ctx context.Context, name string, after uint64, limit int) ([]contract.ParkedEvent, error) {
	if _, err := s.GetDurable(ctx, name); err != nil {
		return nil, err
	}
	return []contract.ParkedEvent{}, nil
}

func (s *refStore) RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error) {
	_, err := s.GetDurable(ctx, name)
	return 0, err
}

func (s *refStore) DropParked(ctx context.Context, name string, upTo uint64) (int, error) {
	_, err := s.GetDurable(ctx, name)
	return 0, err
}

func (s *refStore) adminLocked(name string, force bool) (*durableState, error) {
	if s.closed {
		return nil, contract.ErrClosed
	}
	d, ok := s.durable[name]
	if !ok {
		return nil, contract.ErrDurableNotFound
	}
	if d.holder != nil && !force {
		return nil, contract.ErrDurableNameInUse
	}
	return d, nil
}
