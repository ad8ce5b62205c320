package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Consumer groups run on the durable name machinery: partition p of group
// NAME is the durable name GroupPartitionName(NAME, p), with its own
// cursor and lease, created with the group; a member holds the durable
// name GroupMemberName(NAME, k) of a free slot k while it runs. Members
// are counted from the held member slots, so a member's lease ends the way
// any durable lease does: released when its stream ends, and in a cluster
// released by the leader when the member's node is declared failed. The
// internal names hold a NUL byte, which a user's name cannot
// (contract.ValidateDurableName), so they never collide with one.

// groupSep separates a group's name from its partition and member suffixes.
const groupSep = "\x00"

// GroupPartitionName is the durable name of partition p of group name.
func GroupPartitionName(name string, p int) string { return name + groupSep + "p" + strconv.Itoa(p) }

// GroupMemberName is the durable name of member slot k of group name.
func GroupMemberName(name string, k int) string { return name + groupSep + "m" + strconv.Itoa(k) }

// SplitGroupName parses an internal name of a group: the group's name, the
// kind ('p' for a partition, 'm' for a member slot) and the index. ok is
// false for a user's name.
func SplitGroupName(s string) (group string, kind byte, idx int, ok bool) {
	i := strings.Index(s, groupSep)
	if i < 0 || i+2 > len(s) {
		return "", 0, 0, false
	}
	kind = s[i+1]
	if kind != 'p' && kind != 'm' {
		return "", 0, 0, false
	}
	n, err := strconv.Atoi(s[i+2:])
	if err != nil || n < 0 {
		return "", 0, 0, false
	}
	return s[:i], kind, n, true
}

// IsGroupInternal reports whether name is a partition or member slot name.
func IsGroupInternal(name string) bool { return strings.Contains(name, groupSep) }

// GroupDurables is implemented by the Durables of every store that runs
// consumer groups. The partitions and member slots themselves are taken,
// advanced and released with the Durables calls.
type GroupDurables interface {
	// EnsureGroup creates group name with query, start and spec: its
	// record and every partition, all at the cursor start gives when it
	// applies. For a group that exists it checks query and spec; a name
	// that is a plain durable stream, or a group of another shape, is
	// refused with contract.ErrDurableQueryMismatch naming what is stored.
	EnsureGroup(ctx context.Context, name string, query contract.EventQuery, start contract.StartPosition, spec contract.GroupSpec) (created bool, err error)
	// GroupHolders returns who holds each partition and each member slot
	// of group name ("" when free), from this node's state, which may be
	// a moment behind: the acquire that follows decides. A group that
	// does not exist (any more) is contract.ErrDurableNotFound.
	GroupHolders(ctx context.Context, name string) (partitions, members []string, err error)
}

// GroupMismatch is the error for subscribing to a name in a shape other
// than the stored one: a group with another key or partition count, a
// group without the group option (want nil), or a plain durable name with
// it (stored nil).
func GroupMismatch(name string, stored, want *contract.GroupSpec) error {
	switch {
	case stored == nil:
		return fmt.Errorf("%w: %q is a durable stream, not a consumer group: subscribe without the group option", contract.ErrDurableQueryMismatch, name)
	case want == nil:
		return fmt.Errorf("%w: %q is a consumer group (%s): subscribe as a member, with the group option", contract.ErrDurableQueryMismatch, name, stored)
	}
	return fmt.Errorf("%w: %q is a consumer group (%s), not %s", contract.ErrDurableQueryMismatch, name, stored, want)
}

// groupBalanceEvery is how often a member looks at the group's leases:
// it takes free partitions up to its share and gives back those above it.
// It reads local state only, and proposes only to take a partition that
// looks free or to give one back.
const groupBalanceEvery = 200 * time.Millisecond

// groupSub is one member of a consumer group: a set of partition
// subscriptions and the loop that balances them.
type groupSub struct {
	e       *Engine
	gd      GroupDurables
	id      uint64
	name    string
	spec    contract.GroupSpec
	query   contract.EventQuery
	matcher *contract.Matcher
	handler contract.StreamHandler
	holder  string // the member's holder: of its slot and of every partition it holds
	slot    int

	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	wake   chan struct{} // a partition subscription ended
	done   chan struct{}

	mu    sync.Mutex
	parts map[int]*subscription
	// gates[p] is held while partition p's handler runs, so that giving
	// the partition back waits for the batch in hand instead of cancelling
	// it.
	gates     map[int]*sync.Mutex
	stopped   bool
	stopCause error
	err       error
}

// group starts a member of group name (Durable with opts.Group set).
func (e *Engine) group(ctx context.Context, name string, query contract.EventQuery, handler contract.StreamHandler, opts contract.DurableOptions) (contract.Subscription, error) {
	gd, ok := e.cfg.Durables.(GroupDurables)
	if !ok {
		return nil, fmt.Errorf("consumer groups are not supported by this store: %w", errors.ErrUnsupported)
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	if err := opts.Start.Validate(); err != nil {
		return nil, err
	}
	spec := *opts.Group
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: stream handler must not be nil", contract.ErrInvalidQuery)
	}
	query.MinSequenceNumber = 0
	m, err := contract.NewMatcher(query)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, contract.ErrClosed
	}
	created, err := gd.EnsureGroup(ctx, name, query, opts.Start, spec)
	if err != nil {
		return nil, fmt.Errorf("consumer group %q: %w", name, err)
	}
	if !created && opts.Start.Kind != contract.StartBeginning {
		e.cfg.Logger.Info("consumer group exists: its partitions resume from their cursors; a start position applies only when a group is created",
			"name", name, "start_asked", opts.Start.String())
	}
	gctx, cancel := context.WithCancelCause(ctx)
	g := &groupSub{
		e: e, gd: gd, id: e.nextID.Add(1), name: name, spec: spec, query: query, matcher: m, handler: handler,
		parent: ctx, ctx: gctx, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{}),
		parts: make(map[int]*subscription), gates: make(map[int]*sync.Mutex),
	}
	g.holder = fmt.Sprintf("%s/g%d", e.cfg.HolderPrefix, g.id)
	if err := g.join(ctx); err != nil {
		cancel(nil)
		return nil, fmt.Errorf("consumer group %q: %w", name, err)
	}
	// The first balance runs before the call returns, so a member that is
	// alone holds its partitions (and replays them) from the start.
	if err := g.balance(); err != nil {
		g.teardown()
		cancel(nil)
		return nil, fmt.Errorf("consumer group %q: %w", name, err)
	}
	go g.loop()
	return g, nil
}

// join takes the first free member slot.
func (g *groupSub) join(ctx context.Context) error {
	for k := 0; k < contract.MaxGroupMembers; k++ {
		slot := g.memberLease(k)
		_, err := slot.acquire(ctx, g.query, contract.DurableOptions{})
		if err == nil {
			g.slot = k
			return nil
		}
		if !errors.Is(err, contract.ErrDurableNameInUse) {
			slot.release()
			return err
		}
	}
	return fmt.Errorf("%w: the group has %d members, the most it takes", contract.ErrDurableNameInUse, contract.MaxGroupMembers)
}

func (g *groupSub) ID() uint64 { return g.id }

// Done is closed when the member has ended and given back its partitions.
func (g *groupSub) Done() <-chan struct{} { return g.done }

// Err says why the member ended, as for a durable stream.
func (g *groupSub) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Unsubscribe ends the member: each partition stops after the batch in
// its handler (whose nil return still moves that cursor), stores its
// cursor and is released; then the member slot. While a handler call of
// one of its partitions runs (it may be the caller) it does not wait, as
// a durable stream's Unsubscribe; Done says when the member has ended.
func (g *groupSub) Unsubscribe() { g.stop(nil) }

func (g *groupSub) stop(cause error) {
	g.mu.Lock()
	if !g.stopped {
		g.stopped, g.stopCause = true, cause
	}
	inHandler := false
	for _, s := range g.parts {
		s.mu.Lock()
		if s.inHandler {
			inHandler = true
		}
		s.mu.Unlock()
	}
	g.mu.Unlock()
	g.cancel(nil)
	if !inHandler {
		<-g.done
	}
}

func (g *groupSub) isStopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// loop balances the member's partitions until the member ends.
func (g *groupSub) loop() {
	defer close(g.done)
	tick := time.NewTicker(groupBalanceEvery)
	defer tick.Stop()
	var runErr error
	for runErr == nil {
		select {
		case <-g.ctx.Done():
		case <-tick.C:
		case <-g.wake:
		}
		if g.ctx.Err() != nil || g.isStopped() {
			break
		}
		runErr = g.balance()
	}
	g.teardown()
	reason := g.endReason(runErr)
	g.mu.Lock()
	g.err = reason
	g.mu.Unlock()
	if runErr != nil && reason != nil && !errors.Is(reason, contract.ErrClosed) && !errors.Is(reason, context.Canceled) {
		g.e.cfg.Logger.Warn("consumer group member ended", "group", g.name, "member", g.holder, "error", reason)
	}
}

func (g *groupSub) endReason(runErr error) error {
	g.mu.Lock()
	stopped, cause := g.stopped, g.stopCause
	g.mu.Unlock()
	switch {
	case stopped:
		return cause
	case runErr != nil:
		return runErr
	case g.parent.Err() != nil:
		return context.Cause(g.parent)
	}
	return nil
}

// teardown stops every partition (each stores its cursor and lets go of
// its name) and gives back the member slot.
func (g *groupSub) teardown() {
	g.mu.Lock()
	parts := make([]*subscription, 0, len(g.parts))
	for _, s := range g.parts {
		parts = append(parts, s)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.end(nil)
		}()
	}
	wg.Wait()
	g.mu.Lock()
	clear(g.parts)
	clear(g.gates)
	g.mu.Unlock()
	g.memberLease(g.slot).release()
}

// memberLease is this member's lease on member slot k: no subscription
// stands behind it, but it is taken and released like a durable stream's
// name (a release that cannot commit is retried in the background).
func (g *groupSub) memberLease(k int) *durableLease {
	return g.e.newLease(g.parent, GroupMemberName(g.name, k), g.holder)
}

// balance settles the partitions that ended, then moves the member toward
// its fair share: ceil(partitions / live members). A member above it gives
// back its highest partitions (each after the batch in its handler); one
// below it takes partitions that are free. A partition that ended with an
// error other than a lost lease ends the member with that error.
func (g *groupSub) balance() error {
	if err := g.reap(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.e.cfg.CursorTimeout)
	defer cancel()
	partHolders, memberHolders, err := g.gd.GroupHolders(ctx, g.name)
	if err != nil {
		if errors.Is(err, contract.ErrDurableNotFound) {
			return fmt.Errorf("%w: consumer group %q was deleted", contract.ErrDurableLeaseLost, g.name)
		}
		if errors.Is(err, contract.ErrClosed) {
			return err
		}
		g.e.cfg.Logger.Debug("consumer group: read leases", "group", g.name, "error", err)
		return nil
	}
	live := 0
	for k, h := range memberHolders {
		if h != "" && (k != g.slot || h == g.holder) {
			live++
		}
	}
	if g.slot >= len(memberHolders) || memberHolders[g.slot] != g.holder {
		// This member's slot was taken from it (a forced reset or the
		// cluster declared its node gone): it still counts itself, and
		// takes its slot back when free.
		live++
		if g.slot < len(memberHolders) && memberHolders[g.slot] == "" {
			if _, err := g.memberLease(g.slot).acquire(ctx, g.query, contract.DurableOptions{}); err != nil {
				g.e.cfg.Logger.Debug("consumer group: retake member slot", "group", g.name, "error", err)
			}
		}
	}
	// Each member's share is floor or ceil of partitions / live members.
	// A member gives back what is above the ceil, and above the floor
	// while another member is below it (one partition a round, so the
	// members above do not all give back at once more than needed).
	share := (g.spec.Partitions + live - 1) / live
	floor := g.spec.Partitions / live
	counts := make(map[string]int, live)
	for _, h := range partHolders {
		if h != "" {
			counts[h]++
		}
	}
	starved := false
	for k, h := range memberHolders {
		if h != "" && h != g.holder && k != g.slot && counts[h] < floor {
			starved = true
		}
	}

	g.mu.Lock()
	held := make([]int, 0, len(g.parts))
	for p := range g.parts {
		held = append(held, p)
	}
	g.mu.Unlock()
	keep := share
	if starved && len(held) > floor {
		keep = len(held) - 1
	}
	if len(held) > keep {
		// Give back the highest partitions, each after the batch in its
		// handler: its cursor is stored before the name is released.
		for len(held) > keep {
			hi := 0
			for i, p := range held {
				if p > held[hi] {
					hi = i
				}
			}
			p := held[hi]
			held = append(held[:hi], held[hi+1:]...)
			g.mu.Lock()
			s, gate := g.parts[p], g.gates[p]
			delete(g.parts, p)
			delete(g.gates, p)
			g.mu.Unlock()
			giveBack(s, gate)
			if err := s.Err(); err != nil && !errors.Is(err, contract.ErrDurableLeaseLost) {
				return err
			}
		}
		return nil
	}
	for p := 0; p < len(partHolders) && len(held) < share; p++ {
		if partHolders[p] != "" || g.has(p) {
			continue
		}
		if g.isStopped() || g.ctx.Err() != nil {
			return nil
		}
		err := g.startPartition(p)
		switch {
		case err == nil:
			held = append(held, p)
		case errors.Is(err, contract.ErrDurableNameInUse):
			// Another member took it first.
		case errors.Is(err, contract.ErrClosed):
			return err
		case errors.Is(err, contract.ErrDurableQueryMismatch), errors.Is(err, contract.ErrDurableNotFound):
			return err
		default:
			g.e.cfg.Logger.Debug("consumer group: take partition", "group", g.name, "partition", p, "error", err)
		}
	}
	return nil
}

func (g *groupSub) has(p int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.parts[p]
	return ok
}

// reap forgets the partition subscriptions that ended on their own.
func (g *groupSub) reap() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, s := range g.parts {
		select {
		case <-s.done:
		default:
			continue
		}
		delete(g.parts, p)
		delete(g.gates, p)
		err := s.Err()
		if err == nil {
			continue
		}
		if errors.Is(err, contract.ErrDurableLeaseLost) {
			// Taken from this member (a forced reset, or the cluster
			// declared its node gone): another member has it or will.
			g.e.cfg.Logger.Info("consumer group: partition taken from this member", "group", g.name, "partition", p, "member", g.holder)
			continue
		}
		return err
	}
	return nil
}

// startPartition takes partition p and starts delivering it from its
// cursor.
func (g *groupSub) startPartition(p int) error {
	e := g.e
	gate := new(sync.Mutex)
	var s *subscription
	handler := func(ctx context.Context, batch []contract.EventRecord) error {
		gate.Lock()
		defer gate.Unlock()
		if s.isStopped() {
			// Given back while this batch waited for the gate: not
			// handled, so the next holder gets it.
			return errStopped
		}
		return g.handler(ctx, batch)
	}
	s, err := e.newSubscription(g.ctx, g.matcher, handler, func(ps *subscription) {
		ps.parent = g.parent
		ps.durable, ps.name = true, GroupPartitionName(g.name, p)
		ps.lease = e.newLease(ps.ctx, ps.name, g.holder)
	})
	if err != nil {
		return err
	}
	spec := g.spec
	s.filter = func(rec contract.EventRecord) bool { return spec.Partition(rec) == p }
	ctx, cancel := context.WithTimeout(g.ctx, e.cfg.CursorTimeout)
	acq, err := s.lease.acquire(ctx, g.query, contract.DurableOptions{})
	cancel()
	if err != nil {
		if !errors.Is(err, contract.ErrDurableNameInUse) && !errors.Is(err, contract.ErrDurableQueryMismatch) &&
			!errors.Is(err, contract.ErrClosed) && !errors.Is(err, contract.ErrDurableNotFound) {
			s.lease.release()
		}
		e.remove(s)
		s.cancel(nil)
		return fmt.Errorf("partition %d: %w", p, err)
	}
	s.pos = acq.Cursor
	s.cur = startCursor(s.lease, acq.Cursor, s.cancel, e.cfg.Logger)
	s.start = s.pos
	s.progress.Store(s.pos)
	g.mu.Lock()
	g.parts[p], g.gates[p] = s, gate
	g.mu.Unlock()
	s.goLive()
	go func() {
		<-s.done
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}()
	return nil
}

// filterBatches keeps, of each batch, the events keep accepts, and drops
// the batches left empty.
func filterBatches(batches [][]contract.EventRecord, keep func(contract.EventRecord) bool) [][]contract.EventRecord {
	out := batches[:0]
	for _, b := range batches {
		kept := b[:0:0]
		for _, r := range b {
			if keep(r) {
				kept = append(kept, r)
			}
		}
		if len(kept) > 0 {
			out = append(out, kept)
		}
	}
	return out
}

// groupPositions replaces, in positions by durable name, the entries of
// group partitions by one per group: the lowest position of its partitions
// held here, through which the group has handled its share of the log.
func groupPositions(positions map[string]uint64) {
	for name, pos := range positions {
		group, kind, _, ok := SplitGroupName(name)
		if !ok {
			continue
		}
		delete(positions, name)
		if kind != 'p' {
			continue
		}
		if cur, seen := positions[group]; !seen || pos < cur {
			positions[group] = pos
		}
	}
}

// giveBack stops partition subscription s at a batch boundary: no batch
// starts after it, the one in its handler (holding gate) finishes with its
// ctx alive and is acknowledged, then the subscription stores its cursor
// and releases the partition (stop). Unlike Unsubscribe, a rebalance must
// not cancel a handler that is doing its work.
func giveBack(s *subscription, gate *sync.Mutex) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped, s.stopCause = true, nil
	}
	s.mu.Unlock()
	gate.Lock() // waits for the handler in hand, if any
	gate.Unlock()
	s.end(nil)
}

// GroupMemberPositions returns, for each consumer group with members on
// this engine, each member's position: the lowest position of the
// partitions it holds (the sequence number through which it has handled
// or passed them all).
func (e *Engine) GroupMemberPositions() map[string]map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]map[string]uint64{}
	for _, s := range e.subs {
		if !s.durable {
			continue
		}
		group, kind, _, ok := SplitGroupName(s.name)
		if !ok || kind != 'p' {
			continue
		}
		m := out[group]
		if m == nil {
			m = map[string]uint64{}
			out[group] = m
		}
		pos := s.progress.Load()
		if cur, seen := m[s.lease.holder]; !seen || pos < cur {
			m[s.lease.holder] = pos
		}
	}
	return out
}
