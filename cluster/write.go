package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
)

// Append commits events as one batch. Every append carries an idempotency
// key (the caller's, from contract.WithIdempotencyKey, or a generated one),
// so the node retries through elections and leader changes without ever
// appending twice.
func (n *Node) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	if err := n.disk.Check(); err != nil {
		return contract.AppendResult{}, err
	}
	if err := contract.ValidateEvents(events, n.cfg.Limits); err != nil {
		return contract.AppendResult{}, err
	}
	return n.appendCmd(ctx, boltstore.Command{Op: boltstore.OpAppend, Events: events})
}

// AppendIf commits events only if the context's version is expected. The
// check is decided inside the state machine, in log order.
func (n *Node) AppendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	if err := n.disk.Check(); err != nil {
		return contract.AppendResult{}, err
	}
	if err := contract.ValidateEvents(events, n.cfg.Limits); err != nil {
		return contract.AppendResult{}, err
	}
	if err := contract.ValidateQuery(query); err != nil {
		return contract.AppendResult{}, err
	}
	return n.appendCmd(ctx, boltstore.Command{Op: boltstore.OpAppendIf, Events: events, Query: query, Expected: expected})
}

func (n *Node) appendCmd(ctx context.Context, cmd boltstore.Command) (contract.AppendResult, error) {
	if n.closed.Load() {
		return contract.AppendResult{}, contract.ErrClosed
	}
	cmd.IdempotencyKey = contract.IdempotencyKey(ctx)
	if cmd.IdempotencyKey == "" {
		cmd.IdempotencyKey = "auto-" + n.cfg.NodeID + "-" + randomID(12)
	}
	res, _, err := n.propose(ctx, []boltstore.Command{cmd})
	if err != nil {
		return contract.AppendResult{}, err
	}
	if o, ok := ctx.Value(outcomeCtx{}).(*AppendOutcome); ok {
		o.Duplicate = res[0].Duplicate
	}
	return res[0].Append, res[0].Err
}

// AppendOutcome receives what the contract's AppendResult cannot say.
type AppendOutcome struct {
	// Duplicate: the idempotency key was seen before and the result is the
	// first outcome; nothing was appended this time.
	Duplicate bool
}

type outcomeCtx struct{}

// WithAppendOutcome returns a context whose Append or AppendIf fills o.
func WithAppendOutcome(ctx context.Context, o *AppendOutcome) context.Context {
	return context.WithValue(ctx, outcomeCtx{}, o)
}

// propose commits cmds through Raft, on the leader or forwarded to it, and
// retries while that is safe: always for errors that mean the entry never
// entered the log, and for an unknown outcome too, because every command
// kind proposed here is idempotent (appends carry keys; cursor and lease
// commands are idempotent for their holder).
func (n *Node) propose(ctx context.Context, cmds []boltstore.Command) ([]boltstore.Result, uint64, error) {
	ctx, cancel := n.withDefaultTimeout(ctx, n.cfg.ApplyTimeout)
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
		var res []boltstore.Result
		var idx uint64
		var err error
		if n.raft.State() == raft.Leader {
			res, idx, err = n.applyLocalCtx(ctx, cmds)
		} else {
			res, idx, err = n.forward(ctx, cmds)
		}
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

// applyLocalCtx applies on this node as leader, giving up waiting when ctx
// ends (the entry may still commit: the outcome is then unknown).
func (n *Node) applyLocalCtx(ctx context.Context, cmds []boltstore.Command) ([]boltstore.Result, uint64, error) {
	type out struct {
		res []boltstore.Result
		idx uint64
		err error
	}
	ch := make(chan out, 1)
	go func() {
		r, i, e := n.applyLocal(cmds)
		ch <- out{r, i, e}
	}()
	select {
	case o := <-ch:
		return o.res, o.idx, o.err
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// applyLocal stamps the leader's clock on appends that have no time yet
// (on other commands a time means something else: a removal, a cutoff)
// and applies them.
func (n *Node) applyLocal(cmds []boltstore.Command) ([]boltstore.Result, uint64, error) {
	now := n.cfg.Clock().UTC()
	n.stamps.observe(now)
	for i := range cmds {
		if op := cmds[i].Op; (op == boltstore.OpAppend || op == boltstore.OpAppendIf) && cmds[i].OccurredAt.IsZero() {
			cmds[i].OccurredAt = now
		}
	}
	f := n.raft.Apply(fsm.EncodeCommands(cmds), n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, contract.ErrClosed
		default:
			// ErrLeadershipLost and anything else after enqueueing: the
			// entry may commit under the next leader.
			return nil, 0, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	switch r := f.Response().(type) {
	case []boltstore.Result:
		if len(r) != len(cmds) {
			return nil, 0, fmt.Errorf("state machine returned %d results for %d commands", len(r), len(cmds))
		}
		return r, f.Index(), nil
	case error:
		return nil, 0, r
	default:
		return nil, 0, fmt.Errorf("state machine returned %T", r)
	}
}

// forward sends cmds to the leader's PeerService.
func (n *Node) forward(ctx context.Context, cmds []boltstore.Command) ([]boltstore.Result, uint64, error) {
	cl, err := n.leaderClient()
	if err != nil {
		return nil, 0, err
	}
	resp, err := cl.Forward(ctx, &peerv1.ForwardRequest{Commands: fsm.EncodeCommands(cmds), FromNodeId: n.cfg.NodeID})
	if err != nil {
		return nil, 0, peerError(err)
	}
	res, err := fsm.DecodeResults(resp.GetResults())
	if err != nil {
		return nil, 0, err
	}
	if len(res) != len(cmds) {
		return nil, 0, fmt.Errorf("leader returned %d results for %d commands", len(res), len(cmds))
	}
	return res, resp.GetIndex(), nil
}

// peerError turns a PeerService status into this package's errors.
func peerError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", ErrNotLeader, st.Message())
	case codes.Unavailable:
		// The request may have reached the leader before the connection
		// broke.
		return fmt.Errorf("%w: %s", ErrOutcomeUnknown, st.Message())
	case codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w: %s", ErrOutcomeUnknown, st.Message())
	case codes.Aborted:
		return fmt.Errorf("%w: %s", ErrOutcomeUnknown, st.Message())
	default:
		return fmt.Errorf("leader: %s: %s", st.Code(), st.Message())
	}
}

func (n *Node) withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
