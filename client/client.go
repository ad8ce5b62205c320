package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

// Keepalive pings of the client's connections while calls or streams are
// open: after KeepaliveTime without traffic the client pings, and a
// connection whose ping is not answered within KeepaliveTimeout is closed
// (its calls fail UNAVAILABLE and are retried, its streams resume
// elsewhere). Nodes must permit pings this often: factstr-node allows one
// every 10 s.
const (
	KeepaliveTime    = 30 * time.Second
	KeepaliveTimeout = 10 * time.Second
)

// Client talks to a FACTSTR cluster. It is safe for concurrent use.
type Client struct {
	opts    options
	targets []string
	conns   []*grpc.ClientConn
	writes  []*writeMux // one per conn
	reads   []*readMux  // one per conn
	keys    *keyMaker
	next    atomic.Uint64
	log     *slog.Logger
	// writeNode is the node writes go to first: the one whose last answer
	// did not say it forwarded (the leader), or a guess; -1 before any
	// answer. See WithWritesToAnyNode.
	writeNode atomic.Int64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	subs   map[uint64]*subscription
	nextID uint64
	closed bool
}

var _ contract.EventStore = (*Client)(nil)

// Dial connects to the cluster nodes at targets (host:port). Connections are
// made lazily; Dial fails only for bad arguments, such as a target without
// a port. It does not fail for an address where no node listens yet (calls
// retry across the targets); Ping checks that one answers.
func Dial(ctx context.Context, targets []string, opts ...Option) (*Client, error) {
	if len(targets) == 0 {
		return nil, errors.New("client: no targets; give at least one node address (host:port)")
	}
	o := options{retryTimeout: 30 * time.Second, attemptTimeout: DefaultAttemptTimeout, logger: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	if !o.lagSet {
		o.maxStreamLag = DefaultMaxStreamLag
	}
	if o.attemptTimeout < 0 {
		return nil, fmt.Errorf("client: negative attempt timeout %v; give 0 (no per-attempt bound) or more", o.attemptTimeout)
	}
	creds := insecure.NewCredentials()
	if o.tlsConfig != nil {
		creds = credentials.NewTLS(o.tlsConfig)
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
		// Pings while a call or stream is open notice a connection whose
		// peer vanished without a reset (a long-lived stream would
		// otherwise wait for TCP to give up, many minutes). Nodes permit a
		// ping every 10 s (their keepalive enforcement policy, set in
		// factstr-node serve); WithDialOptions can override this.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}),
	}, o.dialOpts...)
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(wire.TokenCredentials(o.token, o.tlsConfig != nil)))
	}
	c := &Client{opts: o, targets: targets, log: o.logger, subs: make(map[uint64]*subscription), keys: newKeyMaker()}
	c.writeNode.Store(-1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, t := range targets {
		if err := checkTarget(t); err != nil {
			c.closeConns()
			return nil, err
		}
		conn, err := grpc.NewClient(t, dial...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("client: target %q: %w", t, err)
		}
		c.conns = append(c.conns, conn)
		c.writes = append(c.writes, &writeMux{c: c, node: len(c.conns) - 1, kind: writesKind})
		c.reads = append(c.reads, &readMux{c: c, node: len(c.conns) - 1, kind: readsKind})
	}
	return c, nil
}

// Conn returns the connection to target i (admin tools).
func (c *Client) Conn(i int) *grpc.ClientConn { return c.conns[i%len(c.conns)] }

// Targets returns the node addresses the client was given.
func (c *Client) Targets() []string { return append([]string(nil), c.targets...) }

func (c *Client) closeConns() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// pick returns the index of the node to try next.
func (c *Client) pick() int { return int(c.next.Add(1)-1) % len(c.conns) }

// pickWrite is the node a write tries first.
func (c *Client) pickWrite() int {
	if n := c.writeNode.Load(); n >= 0 && !c.opts.anyNodeWrites {
		return int(n)
	}
	return c.pick()
}

// wroteAt learns from a Writes answer of node where writes should go: to
// it when it leads, else on to the next node (which learns the same way,
// so with three nodes the leader is found within two answers, and found
// again after it changes).
func (c *Client) wroteAt(node int, forwarded bool) {
	if len(c.conns) < 2 || c.opts.anyNodeWrites {
		return
	}
	if !forwarded {
		c.writeNode.Store(int64(node))
		return
	}
	cur := c.writeNode.Load()
	if cur == int64(node) || cur < 0 {
		c.writeNode.CompareAndSwap(cur, int64((node+1)%len(c.conns)))
	}
}

func (c *Client) es(i int) factstrv1.EventStoreServiceClient {
	return factstrv1.NewEventStoreServiceClient(c.conns[i])
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// retryable reports whether a failed call may be tried again on another
// node: the node is down, shutting down, or has no leader right now.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.Internal:
		return false
	}
	return false
}

// attempt is one try on one node. Its ctx is cancelled when the client's
// per-attempt timeout passes before the node first answered.
type attempt struct {
	ctx     context.Context
	cancel  context.CancelFunc
	parent  context.Context
	timer   *time.Timer
	stopped bool // answered was called (by the attempt's goroutine only)
	fired   atomic.Bool
}

// newAttempt starts an attempt under parent. It is bounded only when
// parent leaves more time than the attempt timeout: otherwise the caller's
// own deadline comes first and its error is the caller's.
func (c *Client) newAttempt(parent context.Context) *attempt {
	a := &attempt{parent: parent}
	a.ctx, a.cancel = context.WithCancel(parent)
	if d := c.opts.attemptTimeout; d > 0 {
		if dl, ok := parent.Deadline(); !ok || time.Until(dl) > d {
			a.timer = time.AfterFunc(d, func() {
				a.fired.Store(true)
				a.cancel()
			})
		}
	}
	return a
}

// answered stops the clock once the node answered; the rest of the call
// (further pages, a live stream) runs under the parent's ctx alone. It
// reports false when the attempt had already timed out.
func (a *attempt) answered() bool {
	if a.timer == nil || a.stopped {
		return !a.fired.Load()
	}
	a.stopped = true
	return a.timer.Stop()
}

// timedOut reports whether the attempt ended because its own time ran
// out while the parent was still alive.
func (a *attempt) timedOut() bool { return a.fired.Load() && a.parent.Err() == nil }

// end stops the clock and releases the attempt's ctx.
func (a *attempt) end() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.cancel()
}

// timeoutErr is the error of an attempt that timed out: UNAVAILABLE, so
// that the call moves on to the next node.
func (c *Client) timeoutErr(node int, err error) error {
	return status.Errorf(codes.Unavailable, "client: %s did not answer within the attempt timeout (%v): %v", c.targets[node], c.opts.attemptTimeout, err)
}

// call runs f against node after node until it succeeds, fails for a
// reason retrying cannot fix, or the retry budget ends. Each attempt is
// bounded by the attempt timeout until f calls answered (or returns).
func (c *Client) call(ctx context.Context, f func(a *attempt, node int) error) error {
	return c.retryFrom(ctx, c.pick(), c.attempts(f))
}

// callWrite is call for Append and AppendIf: it starts at pickWrite's node.
func (c *Client) callWrite(ctx context.Context, f func(a *attempt, node int) error) error {
	return c.retryFrom(ctx, c.pickWrite(), c.attempts(f))
}

func (c *Client) attempts(f func(a *attempt, node int) error) func(ctx context.Context, node int) (bool, error) {
	return func(ctx context.Context, node int) (bool, error) {
		a := c.newAttempt(ctx)
		defer a.end()
		err := f(a, node)
		if err != nil && a.timedOut() {
			err = c.timeoutErr(node, err)
		}
		return retryable(err), err
	}
}

// retry runs f against node after node while it fails with again set,
// backing off after each full round, until the ctx (or, when it has no
// deadline, the retry budget) ends.
func (c *Client) retry(ctx context.Context, f func(ctx context.Context, node int) (again bool, err error)) error {
	return c.retryFrom(ctx, c.pick(), f)
}

// retryFrom is retry starting at node.
func (c *Client) retryFrom(ctx context.Context, node int, f func(ctx context.Context, node int) (again bool, err error)) error {
	if c.isClosed() {
		return contract.ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.retryTimeout)
		defer cancel()
	}
	backoff := 20 * time.Millisecond
	first := node
	for attempt := 0; ; attempt++ {
		again, err := f(ctx, node)
		if err == nil || !again {
			return err
		}
		if c.isClosed() {
			return contract.ErrClosed
		}
		c.log.Debug("retrying on another node", "node", c.targets[node], "error", err)
		node = (node + 1) % len(c.conns)
		if node == first || len(c.conns) == 1 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
		}
	}
}

// keyMaker makes the idempotency keys of calls that give none. They must be
// unique, not unpredictable: the time the client was made, a random part
// and a counter, so a client's keys sort after the keys of clients made
// before it and after its own earlier keys. Each node records every key
// in a bbolt bucket, and keys that arrive in order land on the bucket's
// last pages instead of dirtying a random page per append.
type keyMaker struct {
	prefix  string
	counter atomic.Uint64
}

func newKeyMaker() *keyMaker {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &keyMaker{prefix: fmt.Sprintf("c%016x%s", uint64(time.Now().UnixNano()), hex.EncodeToString(b))}
}

func (k *keyMaker) next() string { return fmt.Sprintf("%s%016x", k.prefix, k.counter.Add(1)) }

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	return wire.FromStatus(err)
}

// Append commits events as one batch. Its idempotency key is the
// context's (contract.WithIdempotencyKey) or one the client makes, so a
// retry after a lost answer never appends twice.
func (c *Client) Append(ctx context.Context, events []contract.NewEvent) (contract.AppendResult, error) {
	o, err := c.AppendWith(ctx, events, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendWith is Append with explicit options (contract.IdempotentAppender);
// its outcome says whether the key had been used: then nothing was
// appended and the result is the first call's.
func (c *Client) AppendWith(ctx context.Context, events []contract.NewEvent, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if len(events) == 0 {
		return contract.AppendOutcome{}, contract.ErrEmptyAppend
	}
	req := &factstrv1.WritesRequest{Call: &factstrv1.WritesRequest_Append{Append: &factstrv1.AppendRequest{Events: wire.EventsToProto(events), IdempotencyKey: c.keyOf(ctx, opts)}}}
	var resp *factstrv1.AppendResponse
	err := c.callWrite(ctx, func(a *attempt, node int) error {
		r, err := c.writeAt(a.ctx, node, req)
		resp = r.GetAppend()
		return err
	})
	if err != nil {
		return contract.AppendOutcome{}, mapErr(err)
	}
	return contract.AppendOutcome{AppendResult: contract.AppendResult{FirstSequenceNumber: resp.GetFirstSequenceNumber(), LastSequenceNumber: resp.GetLastSequenceNumber(), CommittedCount: resp.GetCommittedCount()}, Duplicate: resp.GetDuplicate()}, nil
}

// AppendIf commits events only if the context's version is expected.
func (c *Client) AppendIf(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64) (contract.AppendResult, error) {
	o, err := c.AppendIfWith(ctx, events, query, expected, contract.AppendOptions{})
	return o.AppendResult, err
}

// AppendIfWith is AppendIf with explicit options, as AppendWith.
func (c *Client) AppendIfWith(ctx context.Context, events []contract.NewEvent, query contract.EventQuery, expected uint64, opts contract.AppendOptions) (contract.AppendOutcome, error) {
	if len(events) == 0 {
		return contract.AppendOutcome{}, contract.ErrEmptyAppend
	}
	req := &factstrv1.WritesRequest{Call: &factstrv1.WritesRequest_AppendIf{AppendIf: &factstrv1.AppendIfRequest{Events: wire.EventsToProto(events), Context: wire.QueryToProto(query), ExpectedContextVersion: expected, IdempotencyKey: c.keyOf(ctx, opts)}}}
	var resp *factstrv1.AppendIfResponse
	err := c.callWrite(ctx, func(a *attempt, node int) error {
		r, err := c.writeAt(a.ctx, node, req)
		resp = r.GetAppendIf()
		return err
	})
	if err != nil {
		return contract.AppendOutcome{}, mapErr(err)
	}
	return contract.AppendOutcome{AppendResult: contract.AppendResult{FirstSequenceNumber: resp.GetFirstSequenceNumber(), LastSequenceNumber: resp.GetLastSequenceNumber(), CommittedCount: resp.GetCommittedCount()}, Duplicate: resp.GetDuplicate()}, nil
}

// keyOf is the call's idempotency key: the explicit one, else the
// context's, else a new one.
func (c *Client) keyOf(ctx context.Context, opts contract.AppendOptions) string {
	if opts.IdempotencyKey != "" {
		return opts.IdempotencyKey
	}
	if key := contract.IdempotencyKey(ctx); key != "" {
		return key
	}
	return c.keys.next()
}

var _ contract.IdempotentAppender = (*Client)(nil)

// Query reads the matching events, linearizable unless ctx carries other
// read options (contract.WithReadOptions).
func (c *Client) Query(ctx context.Context, query contract.EventQuery) (contract.QueryResult, error) {
	req := &factstrv1.QueryRequest{Query: wire.QueryToProto(query), Read: wire.ReadOptionsToProto(contract.ReadOptionsFrom(ctx))}
	rreq := &factstrv1.ReadsRequest{Query: req}
	var res contract.QueryResult
	err := c.call(ctx, func(a *attempt, node int) error {
		res = contract.QueryResult{}
		// Over the node's Reads stream when it has one and the result
		// fits in one answer; else the Query call pages it.
		resp, err := c.reads[node].do(a.ctx, rreq)
		switch {
		case errors.Is(err, errUnsupported):
		case err != nil:
			return err
		case resp.GetStatus() != nil:
			return wire.StatusFromBytes(resp.GetStatus())
		case resp.GetQuery() != nil:
			page := resp.GetQuery()
			res.Events = wire.RecordsFromProto(page.GetEvents())
			res.LastReturnedSequenceNumber = page.GetLastReturnedSequenceNumber()
			res.CurrentContextVersion = page.GetCurrentContextVersion()
			return nil
		}
		st, err := c.es(node).Query(a.ctx, req)
		if err != nil {
			return err
		}
		for {
			page, err := st.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if !a.answered() {
				return context.Canceled // the attempt timed out as the page came
			}
			res.Events = append(res.Events, wire.RecordsFromProto(page.GetEvents())...)
			res.LastReturnedSequenceNumber = page.GetLastReturnedSequenceNumber()
			res.CurrentContextVersion = page.GetCurrentContextVersion()
		}
	})
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, contract.ErrResultTooLarge) {
			// The node sent the first page before refusing the rest; the
			// caller resumes after its LastReturnedSequenceNumber.
			return res, err
		}
		return contract.QueryResult{}, err
	}
	return res, nil
}

// Close ends every subscription and closes the connections; later calls,
// a second Close too, return contract.ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return contract.ErrClosed
	}
	c.closed = true
	subs := make([]*subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.stop(contract.ErrClosed)
	}
	for _, r := range c.reads {
		r.close()
	}
	for _, w := range c.writes {
		w.close()
	}
	c.cancel()
	c.closeConns()
	return nil
}
