package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
)

// Append commits events as one batch. Every append carries an idempotency
// key (the caller's, from contract.WithIdempotencyKey, or a generated one),
// so the node retries through elections and leader changes without ever
// appending twice.
func (n *Node) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	o, err := n.AppendWith(ctx, events, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendIf commits events only if the context's version is expected. The
// check is decided inside the state machine, in log order.
func (n *Node) AppendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	o, err := n.AppendIfWith(ctx, events, query, expected, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendWith is Append with explicit options, reporting whether the call
// was a retry of an append already committed (contract.IdempotentAppender).
func (n *Node) AppendWith(ctx context.Context, events []contract.NewEvent, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if err := n.disk.Check(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateEvents(events, n.cfg.Limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	return n.appendCmd(ctx, opts, boltstore.Command{Op: boltstore.OpAppend, Events: events})
}

// AppendIfWith is AppendIf with explicit options (see AppendWith).
func (n *Node) AppendIfWith(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if err := n.disk.Check(); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateEvents(events, n.cfg.Limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	if err := contract.ValidateContext(query, n.cfg.Limits); err != nil {
		return contract.AppendOutcome{}, err
	}
	return n.appendCmd(ctx, opts, boltstore.Command{Op: boltstore.OpAppendIf, Events: events, Query: query, Expected: expected})
}

func (n *Node) appendCmd(ctx context.Context, opts contract.AppendOptions, cmd boltstore.Command) (contract.AppendOutcome, error) {
	if n.closed.Load() {
		return contract.AppendOutcome{}, contract.ErrClosed
	}
	cmd.IdempotencyKey = opts.IdempotencyKey
	if cmd.IdempotencyKey == "" {
		cmd.IdempotencyKey = contract.IdempotencyKey(ctx)
	}
	if cmd.IdempotencyKey == "" {
		cmd.IdempotencyKey = n.autoKeys.next()
	}
	res, _, err := n.propose(ctx, []boltstore.Command{cmd})
	if err != nil {
		return contract.AppendOutcome{}, err
	}
	return contract.AppendOutcome{AppendResult: res[0].Append, Duplicate: res[0].Duplicate}, res[0].Err
}

// autoKeys makes the idempotency keys of appends whose caller gave none.
// They must be unique for the cluster's lifetime, but they need not be
// random: a key is the node id, the time this process started and a
// counter, after a 0xff byte that no UTF-8 key a caller gives starts with.
// Each node's keys therefore sort at the end of its own range of the
// idempotency buckets, and recording one dirties the last page there
// instead of a random page per append.
type autoKeys struct {
	prefix  []byte
	counter atomic.Uint64
}

func newAutoKeys(nodeID string, start time.Time) *autoKeys {
	p := make([]byte, 0, len(nodeID)+10)
	p = append(p, 0xff)
	p = append(p, nodeID...)
	p = append(p, 0)
	p = binary.BigEndian.AppendUint64(p, uint64(start.UnixNano()))
	return &autoKeys{prefix: p}
}

func (k *autoKeys) next() string {
	b := make([]byte, 0, len(k.prefix)+8)
	b = append(b, k.prefix...)
	b = binary.BigEndian.AppendUint64(b, k.counter.Add(1))
	return string(b)
}

// propose commits cmds through Raft, on the leader or forwarded to it, and
// retries while that is safe: always for errors that mean the entry never
// entered the log, and for an unknown outcome too, because every command
// kind proposed here is idempotent (appends carry keys; cursor and lease
// commands are idempotent for their holder).
func (n *Node) propose(ctx context.Context, cmds []boltstore.Command) ([]boltstore.Result, uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	var lastErr error
	for {
		if n.closed.Load() {
			return nil, 0, contract.ErrClosed
		}
		if n.left.Load() {
			return nil, 0, ErrLeft
		}
		res, idx, err := n.proposer.submitOnce(ctx, cmds, false)
		if err == nil {
			return res, idx, nil
		}
		if !retryable(err) {
			return nil, 0, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if errors.Is(lastErr, ErrOutcomeUnknown) {
				return nil, 0, lastErr
			}
			return nil, 0, fmt.Errorf("%w: %w (last attempt: %v)", ErrNoLeader, ctx.Err(), lastErr)
		case <-n.ctx.Done():
			return nil, 0, contract.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrNotLeader) || errors.Is(err, ErrOutcomeUnknown)
}

// ErrRefusedFromPeer is the outcome of a forwarded command that no
// follower may send: a kind only the leader proposes, or a lease command
// for another node's holder.
var ErrRefusedFromPeer = fsm.ErrRefusedFromPeer

// checkForwarded is the leader's own check of a forwarded command.
func checkForwarded(c *boltstore.Command, from string, limits contract.Limits) error {
	ownHolder := func() error {
		if from == "" || !strings.HasPrefix(c.Holder, from+"/") {
			return fmt.Errorf("%w: %s of holder %q from node %q", ErrRefusedFromPeer, c.Op, c.Holder, from)
		}
		return nil
	}
	c.OccurredAt = time.Time{}
	switch c.Op {
	case boltstore.OpAppend, boltstore.OpAppendIf:
		if c.IdempotencyKey == "" {
			return fmt.Errorf("%w: a forwarded %s carries no idempotency key", ErrRefusedFromPeer, c.Op)
		}
		if err := contract.ValidateEvents(c.Events, limits); err != nil {
			return err
		}
		if c.Op == boltstore.OpAppendIf {
			return contract.ValidateContext(c.Query, limits)
		}
		return nil
	case boltstore.OpAcquire:
		if err := contract.ValidateQueryLimits(c.Query, limits); err != nil {
			return err
		}
		if err := c.Failure.Validate(); err != nil {
			return err
		}
		if err := (contract.StartPosition{Kind: c.Start}).Validate(); err != nil {
			return err
		}
		return ownHolder()
	case boltstore.OpAdvance, boltstore.OpRelease, boltstore.OpPark, boltstore.OpUnpark:
		return ownHolder()
	case boltstore.OpRedeliverParked, boltstore.OpDropParked:
		return nil // an operator's, like a reset; Apply checks the name
	case boltstore.OpReleaseHolders:
		if from == "" || c.Holder != from+"/" {
			return fmt.Errorf("%w: release of holders %q from node %q", ErrRefusedFromPeer, c.Holder, from)
		}
		return nil
	case boltstore.OpNoop:
		return nil
	case boltstore.OpEnsureGroup:
		// Creates or checks a group (its Holder is the group's key, not a
		// lease holder); Apply checks the name and the shape.
		if err := contract.ValidateQueryLimits(c.Query, limits); err != nil {
			return err
		}
		return (contract.StartPosition{Kind: c.Start}).Validate()
	case boltstore.OpResetDurable, boltstore.OpDeleteDurable:
		// An operator's command through any node (the API checked the
		// role); Apply checks the name.
		return (contract.StartPosition{Kind: c.Start}).Validate()
	}
	return fmt.Errorf("%w: %s is proposed by the leader only", ErrRefusedFromPeer, c.Op)
}

// observePropose reports one proposed batch to Config.OnPropose.
func (c *Config) observePropose(kind string, groups, commands int) {
	if c.OnPropose != nil {
		c.OnPropose(kind, groups, commands)
	}
}

// withDefaultTimeout bounds ctx by d unless the caller set a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
