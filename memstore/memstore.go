package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

// Store is an in-memory contract.EventStore. It is safe for concurrent use.
type Store struct {
	limits contract.Limits
	now    func() time.Time
	hub    *streams.Hub
	engine *streams.Engine

	mu       sync.RWMutex
	events   []contract.EventRecord // events[i].SequenceNumber == i+1
	batchEnd []uint64               // batchEnd[i]: last sequence number of the batch holding event i+1
	durables map[string]*durable
	closed   bool
}

type durable struct {
	query    contract.EventQuery
	queryKey string
	start    contract.StartPosition
	cursor   uint64
	holder   string
	created  time.Time
	lastAck  time.Time           // zero: never advanced
	group    *contract.GroupSpec // a consumer group's own entry (see groups.go)
	failure  contract.FailurePolicy
	parked   map[uint64]*parkedEvent // by sequence number; see parked.go
}

// Option configures a Store.
type Option func(*Store)

// WithLimits sets the limits on appended events.
func WithLimits(l contract.Limits) Option { return func(s *Store) { s.limits = l } }

// WithClock sets the clock that stamps OccurredAt.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{limits: contract.DefaultLimits, now: time.Now, durables: make(map[string]*durable)}
	for _, o := range opts {
		o(s)
	}
	s.hub = streams.NewHub(0)
	s.engine = streams.New(streams.Config{Source: s, Hub: s.hub, Durables: (*durables)(s), HolderPrefix: "mem"})
	return s
}

var _ contract.EventStore = (*Store)(nil)

// Append commits events as one batch.
func (s *Store) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	if err := contract.ValidateEvents(events, s.limits); err != nil {
		return contract.AppendResult{}, err
	}
	return s.append(ctx, events, nil, 0)
}

// AppendIf commits events only if the context's version is expected.
func (s *Store) AppendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	if err := contract.ValidateEvents(events, s.limits); err != nil {
		return contract.AppendResult{}, err
	}
	if err := contract.ValidateContext(query, s.limits); err != nil {
		return contract.AppendResult{}, err
	}
	m, err := contract.NewMatcher(query)
	if err != nil {
		return contract.AppendResult{}, err
	}
	return s.append(ctx, events, m, expected)
}

// append commits validated events, if cond's version is expected.
func (s *Store) append(ctx context.Context, events []contract.NewEvent, cond *contract.Matcher, expected uint64) (contract.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return contract.AppendResult{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return contract.AppendResult{}, contract.ErrClosed
	}
	if cond != nil {
		if actual := s.versionLocked(cond); actual != expected {
			s.mu.Unlock()
			return contract.AppendResult{}, &contract.ConflictError{Expected: expected, Actual: actual}
		}
	}
	at := s.now().UTC()
	first := uint64(len(s.events)) + 1
	last := first + uint64(len(events)) - 1
	for i, ev := range events {
		s.events = append(s.events, contract.EventRecord{
			SequenceNumber: first + uint64(i),
			OccurredAt:     at,
			Type:           ev.Type,
			Payload:        slices.Clone(ev.Payload),
		})
		s.batchEnd = append(s.batchEnd, last)
	}
	// Records are never changed once appended; the cap keeps later appends
	// out of the published slice.
	batch := s.events[first-1 : last : last]
	s.mu.Unlock()
	s.hub.Publish(last, [][]contract.EventRecord{batch})
	return contract.AppendResult{FirstSequenceNumber: first, LastSequenceNumber: last, CommittedCount: uint64(len(events))}, nil
}

func (s *Store) versionLocked(m *contract.Matcher) uint64 {
	for i := len(s.events) - 1; i >= 0; i-- {
		if m.Match(s.events[i].Type, s.events[i].Payload) {
			return s.events[i].SequenceNumber
		}
	}
	return 0
}

// Query returns the matching events after query.MinSequenceNumber.
func (s *Store) Query(ctx context.Context, query contract.EventQuery) (contract.QueryResult, error) {
	if err := contract.ValidateQueryLimits(query, s.limits); err != nil {
		return contract.QueryResult{}, err
	}
	m, err := contract.NewMatcher(query)
	if err != nil {
		return contract.QueryResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return contract.QueryResult{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return contract.QueryResult{}, contract.ErrClosed
	}
	var (
		res     contract.QueryResult
		size    int
		tooBig  bool
		maxSize = s.limits.MaxQueryBytes
	)
	for _, ev := range s.events {
		if !m.Match(ev.Type, ev.Payload) {
			continue
		}
		res.CurrentContextVersion = ev.SequenceNumber
		if ev.SequenceNumber <= query.MinSequenceNumber || tooBig {
			continue
		}
		if size += contract.ResultBytes(ev.Type, ev.Payload); maxSize > 0 && size > maxSize {
			// Keep looking only for the context version: the page ends here.
			tooBig = true
			continue
		}
		res.Events = append(res.Events, cloneRecord(ev))
		res.LastReturnedSequenceNumber = ev.SequenceNumber
	}
	if tooBig {
		return res, contract.ResultTooLarge(maxSize, query, res.LastReturnedSequenceNumber)
	}
	return res, nil
}

// ReadBatches implements streams.Source.
func (s *Store) ReadBatches(_ context.Context, after, upTo uint64, m *contract.Matcher, maxBatches int, maxBytes int64) ([][]contract.EventRecord, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, after, contract.ErrClosed
	}
	upTo = min(upTo, uint64(len(s.events)))
	var (
		out       [][]contract.EventRecord
		cur       []contract.EventRecord
		outBytes  int64
		pushedEnd uint64
	)
	for seq := after + 1; seq <= upTo; seq++ {
		ev := s.events[seq-1]
		if m.Match(ev.Type, ev.Payload) {
			cur = append(cur, cloneRecord(ev))
		}
		if end := s.batchEnd[seq-1]; seq == end || seq == upTo {
			if len(cur) > 0 {
				n := streams.BatchBytes(cur)
				if len(out) > 0 && maxBytes > 0 && outBytes+n > maxBytes {
					return out, pushedEnd, nil
				}
				out, cur, outBytes, pushedEnd = append(out, cur), nil, outBytes+n, seq
				if (len(out) >= maxBatches || (maxBytes > 0 && outBytes >= maxBytes)) && seq < upTo {
					return out, seq, nil
				}
			}
		}
	}
	return out, max(upTo, after), nil
}

func (s *Store) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return s.StreamTo(ctx, contract.EventQuery{}, h)
}

func (s *Store) StreamTo(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	return s.streamTo(ctx, q, false, h)
}

// StreamCatchUp is StreamTo that catches up first even from 0: it delivers
// every matching batch after q.MinSequenceNumber (0: from the first), then
// continues live. A server uses it for a client that resumes a stream
// which began on an empty log.
func (s *Store) StreamCatchUp(ctx context.Context, q contract.EventQuery, h contract.StreamHandler) (contract.Subscription, error) {
	return s.streamTo(ctx, q, true, h)
}

func (s *Store) streamTo(ctx context.Context, q contract.EventQuery, catchUp bool, h contract.StreamHandler) (contract.Subscription, error) {
	if err := contract.ValidateQueryLimits(q, s.limits); err != nil {
		return nil, err
	}
	return s.engine.Live(ctx, q, catchUp, h)
}

func (s *Store) StreamAllDurable(ctx context.Context, name string, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return s.StreamToDurable(ctx, name, contract.EventQuery{}, h, opts...)
}

func (s *Store) StreamToDurable(ctx context.Context, name string, q contract.EventQuery, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	if err := contract.ValidateQueryLimits(q, s.limits); err != nil {
		return nil, err
	}
	return s.engine.Durable(ctx, name, q, h, contract.NewDurableOptions(opts...))
}

// Close ends every subscription; later calls, a second Close too, return
// contract.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return contract.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.engine.Close()
	s.hub.Close()
	return nil
}

func cloneRecord(r contract.EventRecord) contract.EventRecord {
	r.Payload = json.RawMessage(slices.Clone([]byte(r.Payload)))
	return r
}

// durables implements streams.Durables on the store's map.
type durables Store

func (d *durables) Acquire(_ context.Context, name string, q contract.EventQuery, holder string, opts contract.DurableOptions) (streams.AcquireResult, error) {
	start := opts.Start
	key, err := streams.QueryKey(q)
	if err != nil {
		return streams.AcquireResult{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return streams.AcquireResult{}, contract.ErrClosed
	}
	if err := (*Store)(d).groupAcquireRefusalLocked(name); err != nil {
		return streams.AcquireResult{}, err
	}
	cur, ok := d.durables[name]
	if !ok {
		cursor, err := streams.StartCursor(start, uint64(len(d.events)))
		if err != nil {
			return streams.AcquireResult{}, err
		}
		if err := opts.Failure.Validate(); err != nil {
			return streams.AcquireResult{}, err
		}
		nd := &durable{query: contract.EventQuery{Filters: q.Filters}, queryKey: key, start: start,
			cursor: cursor, holder: holder, created: d.now().UTC(), failure: opts.Failure.Normalized()}
		d.durables[name] = nd
		return streams.AcquireResult{Cursor: cursor, Created: true, Failure: nd.failure}, nil
	}
	if cur.queryKey != key {
		return streams.AcquireResult{}, streams.QueryMismatch(name, cur.query)
	}
	if cur.holder != "" {
		return streams.AcquireResult{}, fmt.Errorf("%w: %q", contract.ErrDurableNameInUse, name)
	}
	cur.holder = holder
	return streams.AcquireResult{Cursor: cur.cursor, Failure: cur.failure}, nil
}

func (d *durables) Advance(_ context.Context, name, holder string, cursor uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, ok := d.durables[name]
	if !ok || cur.holder != holder {
		return fmt.Errorf("%w: durable stream %q is not held by %s", contract.ErrDurableLeaseLost, name, holder)
	}
	cur.cursor = max(cur.cursor, cursor)
	cur.lastAck = d.now().UTC()
	return nil
}

func (d *durables) Release(_ context.Context, name, holder string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.durables[name]; ok && cur.holder == holder {
		cur.holder = ""
	}
	return nil
}

var _ contract.DurableAdmin = (*Store)(nil)

func (s *Store) infoLocked(name string, d *durable) contract.DurableInfo {
	head := uint64(len(s.events))
	info := contract.DurableInfo{
		Name: name, Query: d.query, Start: d.start, Cursor: d.cursor, Head: head,
		Lag:    contract.DurableLag(head, d.cursor),
		Holder: d.holder, Created: d.created, LastAck: d.lastAck,
		Failure: d.failure, Parked: uint64(len(d.parked)),
	}
	if d.group != nil {
		s.groupInfoLocked(&info, d) // a group's cursor is its lowest partition's
	}
	info.LagTime = contract.DurableLagTime(s.now(), s.firstPendingLocked(info.Query, info.Cursor))
	return info
}

// firstPendingLocked is the OccurredAt of the first event after cursor
// that q matches; zero when none does (the name is caught up).
func (s *Store) firstPendingLocked(q contract.EventQuery, cursor uint64) time.Time {
	q.MinSequenceNumber = 0
	m, err := contract.NewMatcher(q)
	if err != nil {
		return time.Time{}
	}
	for seq := cursor + 1; seq <= uint64(len(s.events)); seq++ {
		if ev := s.events[seq-1]; m.Match(ev.Type, ev.Payload) {
			return ev.OccurredAt
		}
	}
	return time.Time{}
}

// ListDurable returns every durable name, sorted by name.
func (s *Store) ListDurable(ctx context.Context) ([]contract.DurableInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, contract.ErrClosed
	}
	out := make([]contract.DurableInfo, 0, len(s.durables))
	for name, d := range s.durables {
		if streams.IsGroupInternal(name) {
			continue // shown in its group's info
		}
		out = append(out, s.infoLocked(name, d))
	}
	slices.SortFunc(out, func(a, b contract.DurableInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// GetDurable returns one durable name.
func (s *Store) GetDurable(ctx context.Context, name string) (contract.DurableInfo, error) {
	if err := ctx.Err(); err != nil {
		return contract.DurableInfo{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return contract.DurableInfo{}, contract.ErrClosed
	}
	d, ok := s.durables[name]
	if !ok || streams.IsGroupInternal(name) {
		return contract.DurableInfo{}, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
	}
	return s.infoLocked(name, d), nil
}

// ResetDurable moves name's cursor; a held name only with force, which
// takes its holder's lease.
func (s *Store) ResetDurable(ctx context.Context, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	if err := ctx.Err(); err != nil {
		return contract.DurableInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.heldCheckLocked(name, force, "reset")
	if err != nil {
		return contract.DurableInfo{}, err
	}
	if d.group != nil {
		if err := s.groupAdminLocked(name, &to, force); err != nil {
			return contract.DurableInfo{}, err
		}
		return s.infoLocked(name, d), nil
	}
	cursor, err := streams.StartCursor(to, uint64(len(s.events)))
	if err != nil {
		return contract.DurableInfo{}, err
	}
	d.cursor, d.holder = cursor, ""
	return s.infoLocked(name, d), nil
}

// DeleteDurable forgets name; a held name only with force.
func (s *Store) DeleteDurable(ctx context.Context, name string, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.heldCheckLocked(name, force, "delete")
	if err != nil {
		return err
	}
	if d.group != nil {
		return s.groupAdminLocked(name, nil, force)
	}
	delete(s.durables, name)
	return nil
}

func (s *Store) heldCheckLocked(name string, force bool, what string) (*durable, error) {
	if s.closed {
		return nil, contract.ErrClosed
	}
	d, ok := s.durables[name]
	if !ok || streams.IsGroupInternal(name) {
		return nil, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
	}
	if d.holder != "" && !force {
		return nil, streams.HeldRefusal(what, name, d.holder)
	}
	return d, nil
}
