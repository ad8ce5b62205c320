package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
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
	return n.appendCmd(ctx, opts, func(key string) command.Command { return command.Append{Events: events, IdempotencyKey: key} })
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
	return n.appendCmd(ctx, opts, func(key string) command.Command {
		return command.AppendIf{Events: events, Context: query, Expected: expected, IdempotencyKey: key}
	})
}

// appendCmd proposes the append cmd builds with the call's idempotency
// key: the caller's, else the context's, else a generated one.
func (n *Node) appendCmd(ctx context.Context, opts contract.AppendOptions, cmd func(key string) command.Command) (contract.AppendOutcome, error) {
	if n.closed.Load() {
		return contract.AppendOutcome{}, contract.ErrClosed
	}
	key := opts.IdempotencyKey
	if key == "" {
		key = contract.IdempotencyKey(ctx)
	}
	if key == "" {
		key = n.autoKeys.next()
	}
	res, _, err := n.propose(ctx, []command.Command{cmd(key)})
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
func (n *Node) propose(ctx context.Context, cmds []command.Command) ([]command.Result, uint64, error) {
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
var ErrRefusedFromPeer = command.ErrRefusedFromPeer

// checkForwarded is the leader's own check of a forwarded command. It
// returns the command without the sender's clock: the proposer stamps the
// leader's (see stamp).
func checkForwarded(c command.Command, from string, limits contract.Limits) (command.Command, error) {
	ownHolder := func(holder string) error {
		if from == "" || !strings.HasPrefix(holder, from+"/") {
			return fmt.Errorf("%w: %s of holder %q from node %q", ErrRefusedFromPeer, c.Kind(), holder, from)
		}
		return nil
	}
	noKey := func() error {
		return fmt.Errorf("%w: a forwarded %s carries no idempotency key", ErrRefusedFromPeer, c.Kind())
	}
	switch c := c.(type) {
	case command.Append:
		c.OccurredAt = time.Time{}
		if c.IdempotencyKey == "" {
			return c, noKey()
		}
		return c, contract.ValidateEvents(c.Events, limits)
	case command.AppendIf:
		c.OccurredAt = time.Time{}
		if c.IdempotencyKey == "" {
			return c, noKey()
		}
		if err := contract.ValidateEvents(c.Events, limits); err != nil {
			return c, err
		}
		return c, contract.ValidateContext(c.Context, limits)
	case command.Acquire:
		c.OccurredAt = time.Time{}
		if err := contract.ValidateQueryLimits(c.Query, limits); err != nil {
			return c, err
		}
		if err := c.Failure.Validate(); err != nil {
			return c, err
		}
		if err := c.Start.Validate(); err != nil {
			return c, err
		}
		return c, ownHolder(c.Holder)
	case command.Advance:
		c.OccurredAt = time.Time{}
		return c, ownHolder(c.Holder)
	case command.Park:
		c.OccurredAt = time.Time{}
		return c, ownHolder(c.Holder)
	case command.Release:
		return c, ownHolder(c.Holder)
	case command.Unpark:
		return c, ownHolder(c.Holder)
	case command.RedeliverParked, command.DropParked:
		return c, nil // an operator's, like a reset; Apply checks the name
	case command.ReleaseHolders:
		if from == "" || c.HolderPrefix != from+"/" {
			return c, fmt.Errorf("%w: release of holders %q from node %q", ErrRefusedFromPeer, c.HolderPrefix, from)
		}
		return c, nil
	case command.Noop:
		return c, nil
	case command.EnsureGroup:
		// Creates or checks a group; Apply checks the name and the shape.
		c.OccurredAt = time.Time{}
		if err := contract.ValidateQueryLimits(c.Query, limits); err != nil {
			return c, err
		}
		return c, c.Start.Validate()
	case command.ResetDurable:
		// An operator's command through any node (the API checked the
		// role); Apply checks the name.
		return c, c.To.Validate()
	case command.DeleteDurable:
		return c, nil
	}
	return c, fmt.Errorf("%w: %s is proposed by the leader only", ErrRefusedFromPeer, c.Kind())
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
