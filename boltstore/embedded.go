package boltstore

import (
	"context"
	"sync"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// maxGroup bounds the commands one group commit takes, so the leader's own
// wait stays bounded under load.
const maxGroup = 256

// pruneEvery is how often embedded mode prunes idempotency keys older than
// the retention.
const pruneEvery = time.Minute

// Append commits events as one batch (contract.EventStore).
func (s *Store) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	o, err := s.AppendWith(ctx, events, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendWith is Append with explicit options (contract.IdempotentAppender):
// a retry with the same idempotency key returns the first outcome, marked
// Duplicate. An empty key is the context's (contract.WithIdempotencyKey).
func (s *Store) AppendWith(ctx context.Context, events []contract.NewEvent, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if err := s.gc.writable(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := s.disk.Check(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateEvents(events, s.opts.limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := ctx.Err(); err != nil {
		return contract.AppendOutcome{}, err
	}
	return appendOutcome(s.gc.submit(command.Append{Events: events, OccurredAt: s.opts.now().UTC(),
		IdempotencyKey: keyOf(ctx, opts)}))
}

// AppendIf commits events only if the context's current version is
// expected; otherwise it returns *contract.ConflictError (contract.EventStore).
func (s *Store) AppendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	o, err := s.AppendIfWith(ctx, events, query, expected, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendIfWith is AppendIf with explicit options, as AppendWith.
func (s *Store) AppendIfWith(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if err := s.gc.writable(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := s.disk.Check(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateEvents(events, s.opts.limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateContext(query, s.opts.limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := ctx.Err(); err != nil {
		return contract.AppendOutcome{}, err
	}
	return appendOutcome(s.gc.submit(command.AppendIf{Events: events, Context: query, Expected: expected,
		OccurredAt: s.opts.now().UTC(), IdempotencyKey: keyOf(ctx, opts)}))
}

func appendOutcome(res command.Result, err error) (contract.AppendOutcome, error) {
	if err != nil {
		return contract.AppendOutcome{}, err
	}
	if res.Err != nil {
		return contract.AppendOutcome{Duplicate: res.Duplicate}, res.Err
	}
	return contract.AppendOutcome{AppendResult: res.Append, Duplicate: res.Duplicate}, nil
}

// keyOf is the call's idempotency key: the explicit one, else the
// context's.
func keyOf(ctx context.Context, opts contract.AppendOptions) string {
	if opts.IdempotencyKey != "" {
		return opts.IdempotencyKey
	}
	return contract.IdempotencyKey(ctx)
}

var _ contract.IdempotentAppender = (*Store)(nil)

func (gc *committer) writable() error {
	s := gc.s
	if s.closing.Load() {
		return contract.ErrClosed
	}
	if s.opts.replicated {
		return ErrReplicated
	}
	return nil
}

// StreamAll delivers every batch committed after it returns.
func (s *Store) StreamAll(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
	return s.StreamTo(ctx, contract.EventQuery{}, h)
}

// StreamTo delivers the matching part of every batch committed after it
// returns; with MinSequenceNumber > 0 it first catches up from there.
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
	if s.closing.Load() {
		return nil, contract.ErrClosed
	}
	if err := contract.ValidateQueryLimits(q, s.opts.limits); err != nil {
		return nil, err
	}
	return s.engine.Live(ctx, q, catchUp, h)
}

// StreamAllDurable is StreamToDurable for every event.
func (s *Store) StreamAllDurable(ctx context.Context, name string, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	return s.StreamToDurable(ctx, name, contract.EventQuery{}, h, opts...)
}

// StreamToDurable replays from name's stored cursor, then continues live;
// the cursor persists in the file.
func (s *Store) StreamToDurable(ctx context.Context, name string, q contract.EventQuery, h contract.StreamHandler, opts ...contract.DurableOption) (contract.Subscription, error) {
	if err := s.gc.writable(); err != nil {
		return nil, err
	}
	if err := contract.ValidateQueryLimits(q, s.opts.limits); err != nil {
		return nil, err
	}
	return s.engine.Durable(ctx, name, q, h, contract.NewDurableOptions(opts...))
}

// committer is the write path of embedded mode: it decides whether the
// store may write itself (writable, adminWrite) and group-commits the
// commands it does write: concurrent writers queue their commands, and the
// first of them to find no commit running applies everything queued as one
// entry, so one fsync acknowledges them all. A replicated store never
// submits through it; its commands come through Apply.
type committer struct {
	s *Store // the store it writes to, through its Apply path

	mu    sync.Mutex
	queue []*pending
	busy  bool // a leader is committing; the next one is woken by it

	lastPrune time.Time // guarded by backend.applyMu
}

type pending struct {
	cmd   command.Command
	res   command.Result
	err   error
	ready chan bool // true: lead the next round; false: committed, res/err set
}

// submit applies cmd as part of a group and returns its result. A caller
// already queued is not cancelled by its context: the command may be
// committing, and its outcome must not be lost.
func (gc *committer) submit(cmd command.Command) (command.Result, error) {
	p := &pending{cmd: cmd, ready: make(chan bool, 1)}
	gc.mu.Lock()
	gc.queue = append(gc.queue, p)
	if gc.busy {
		gc.mu.Unlock()
		if lead := <-p.ready; !lead {
			return p.res, p.err
		}
		gc.mu.Lock()
	}
	gc.busy = true
	n := min(len(gc.queue), maxGroup)
	group := append([]*pending(nil), gc.queue[:n]...)
	gc.queue = append(gc.queue[:0:0], gc.queue[n:]...)
	gc.mu.Unlock()

	gc.commitGroup(group)

	gc.mu.Lock()
	var next *pending
	if len(gc.queue) > 0 {
		next = gc.queue[0]
	} else {
		gc.busy = false
	}
	gc.mu.Unlock()
	for _, q := range group {
		if q != p {
			q.ready <- false
		}
	}
	if next != nil {
		next.ready <- true
	}
	return p.res, p.err
}

func (gc *committer) commitGroup(group []*pending) {
	s := gc.s
	cmds := make([]command.Command, len(group))
	for i, p := range group {
		cmds[i] = p.cmd
	}
	s.be.applyMu.Lock()
	if ret := s.opts.idemRetention; ret > 0 {
		// Embedded mode forgets idempotency keys on its own; a cluster
		// proposes the prune through its log instead.
		if now := s.opts.now(); now.Sub(s.gc.lastPrune) >= pruneEvery {
			s.gc.lastPrune = now
			cmds = append(cmds, command.PruneIdempotency{Before: now.Add(-ret).UTC()})
		}
	}
	results, err := s.be.applyLocked([]command.Entry{{Index: s.be.applied.Load() + 1, Commands: cmds}}, s.hub)
	s.be.applyMu.Unlock()
	for i, p := range group {
		if err != nil {
			p.err = err
		} else {
			p.res = results[0][i]
		}
	}
}

// durables implements streams.Durables in embedded mode: cursors and leases
// are commands through Apply, so they persist with the events.
type durables Store

func (d *durables) Acquire(_ context.Context, name string, q contract.EventQuery, holder string, opts contract.DurableOptions) (streams.AcquireResult, error) {
	res, err := d.gc.submit(command.Acquire{Name: name, Holder: holder, Query: q, Start: opts.Start,
		Failure: opts.Failure.Normalized(), OccurredAt: d.opts.now().UTC()})
	if err != nil {
		return streams.AcquireResult{}, err
	}
	if res.Err != nil {
		return streams.AcquireResult{}, res.Err
	}
	failure, err := (*Replica)(d).Failure(name)
	if err != nil {
		return streams.AcquireResult{}, err
	}
	return streams.AcquireResult{Cursor: res.Cursor, Created: res.Created, Failure: failure}, nil
}

func (d *durables) Advance(_ context.Context, name, holder string, cursor uint64) error {
	res, err := d.gc.submit(command.Advance{Name: name, Holder: holder, Cursor: cursor, OccurredAt: d.opts.now().UTC()})
	if err != nil {
		return err
	}
	return res.Err
}

func (d *durables) Release(_ context.Context, name, holder string) error {
	res, err := d.gc.submit(command.Release{Name: name, Holder: holder})
	if err != nil {
		return err
	}
	return res.Err
}
