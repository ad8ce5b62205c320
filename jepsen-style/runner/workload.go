package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

const eventType = "jepsen"

type payload struct {
	Ctx string `json:"ctx"`
	ID  string `json:"id"`
}

func ctxQuery(ctx string) contract.EventQuery {
	p, _ := json.Marshal(map[string]string{"ctx": ctx})
	return contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{eventType}, PayloadPredicates: []json.RawMessage{p}}}}
}

func toEvents(recs []contract.EventRecord) []history.Event {
	out := make([]history.Event, 0, len(recs))
	for _, r := range recs {
		var p payload
		_ = json.Unmarshal(r.Payload, &p)
		out = append(out, history.Event{Seq: r.SequenceNumber, ID: p.ID, Ctx: p.Ctx})
	}
	return out
}

// worker is one sequential client.
type worker struct {
	name    string
	node    string // pinned node name, or "any"
	cl      *client.Client
	rec     *history.Recorder
	rng     *rand.Rand
	proc    int
	n       int
	ctxs    []string
	timeout time.Duration
	mix     mix
	seen    map[string]uint64 // last context version seen
	maxSeen uint64            // highest seq observed (for local reads)
}

// mix is the percentage of each operation kind (the rest: local reads).
type mix struct{ appendIf, append, query, tail int }

func (w *worker) pickCtx() string {
	// skewed: the first contexts are hotter
	a, b := w.rng.Intn(len(w.ctxs)), w.rng.Intn(len(w.ctxs))
	return w.ctxs[min(a, b)]
}

func (w *worker) events(ctx string, n int) ([]contract.NewEvent, []string) {
	var evs []contract.NewEvent
	var ids []string
	for i := 0; i < n; i++ {
		w.n++
		id := fmt.Sprintf("%s-%d", w.name, w.n)
		b, _ := json.Marshal(payload{Ctx: ctx, ID: id})
		evs = append(evs, contract.NewEvent{Type: eventType, Payload: b})
		ids = append(ids, id)
	}
	return evs, ids
}

// classify: a conflict or a validation error is definite, everything else
// (timeouts, lost connections, leadership changes) may have committed.
func classifyWrite(err error) string {
	var ce *contract.ConflictError
	switch {
	case errors.As(err, &ce), errors.Is(err, contract.ErrEmptyAppend), errors.Is(err, contract.ErrInvalidEvent), errors.Is(err, contract.ErrLimitExceeded):
		return history.Fail
	}
	return history.Info
}

func (w *worker) step(ctx context.Context) {
	roll := w.rng.Intn(100)
	k := w.pickCtx()
	octx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	m := w.mix
	switch {
	case roll < m.appendIf || roll < m.appendIf+m.append:
		cond := roll < m.appendIf
		evs, ids := w.events(k, 1+w.rng.Intn(3))
		key := fmt.Sprintf("%s-k%d", w.name, w.n)
		args := &history.Value{Ctx: k, IDs: ids, Key: key}
		f := history.FAppend
		exp := w.seen[k]
		if cond {
			f = history.FAppendIf
			args.Expected = &exp
		}
		op := w.rec.Invoke(w.proc, w.name, w.node, f, args)
		var res contract.AppendResult
		var err error
		octx = contract.WithIdempotencyKey(octx, key)
		if cond {
			res, err = w.cl.AppendIf(octx, evs, ctxQuery(k), exp)
		} else {
			res, err = w.cl.Append(octx, evs)
		}
		if err == nil {
			w.rec.Complete(op, w.proc, w.name, w.node, f, history.OK, &history.Value{First: res.FirstSequenceNumber, Last: res.LastSequenceNumber}, nil)
			w.seen[k] = res.LastSequenceNumber
			w.maxSeen = max(w.maxSeen, res.LastSequenceNumber)
			return
		}
		typ := classifyWrite(err)
		var v *history.Value
		var ce *contract.ConflictError
		if errors.As(err, &ce) {
			a := ce.Actual
			v = &history.Value{Actual: &a}
			w.seen[k] = ce.Actual
		}
		w.rec.Complete(op, w.proc, w.name, w.node, f, typ, v, err)
		if typ == history.Info {
			w.proc = w.rec.NewProcess() // the old process may still be "running" that write
		}
	case roll < m.appendIf+m.append+m.query:
		var min uint64
		if w.seen[k] > 0 && w.rng.Intn(5) == 0 {
			min = uint64(w.rng.Int63n(int64(w.seen[k])))
		}
		q := ctxQuery(k)
		q.MinSequenceNumber = min
		w.read(octx, history.FQuery, k, q, min, 0)
	case roll < m.appendIf+m.append+m.query+m.tail:
		w.read(octx, history.FTail, "", contract.EventQuery{MinSequenceNumber: ^uint64(0)}, 0, 0)
	default:
		ma := w.maxSeen
		octx = contract.WithReadOptions(octx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: ma})
		w.read(octx, history.FLocalQuery, k, ctxQuery(k), 0, ma)
	}
}

func (w *worker) read(ctx context.Context, f, k string, q contract.EventQuery, min, minApplied uint64) {
	op := w.rec.Invoke(w.proc, w.name, w.node, f, &history.Value{Ctx: k, Min: min, MinApplied: minApplied})
	res, err := w.cl.Query(ctx, q)
	if err != nil {
		w.rec.Complete(op, w.proc, w.name, w.node, f, history.Fail, nil, err)
		return
	}
	w.rec.Complete(op, w.proc, w.name, w.node, f, history.OK, &history.Value{Events: toEvents(res.Events), LR: res.LastReturnedSequenceNumber, CV: res.CurrentContextVersion}, nil)
	if f == history.FTail {
		w.maxSeen = max(w.maxSeen, res.CurrentContextVersion)
		return
	}
	w.seen[k] = res.CurrentContextVersion
	w.maxSeen = max(w.maxSeen, res.CurrentContextVersion)
}

// consumer is a durable subscriber that fails its handler now and then and
// resubscribes after every stop. With group set it is one member of a
// consumer group keyed by that payload field (progress shared with the
// other members); with park set its name retries a failed batch park
// times, then parks it, and its handler fails exactly the batches that
// hold a poison event (history.Poison).
type consumer struct {
	name   string
	ctx    string // "" : every event
	cl     *client.Client
	rec    *history.Recorder
	rng    *rand.Rand
	failPc int
	group  string         // consumer group key ("": a plain durable name)
	member string         // the member's label within its group
	shared *groupProgress // what the group's members handled
	park   int            // deliveries before a batch is parked (0: stop policy)

	mu      sync.Mutex
	inc     int
	handled uint64 // last seq handled successfully
	sub     contract.Subscription
	subOp   int
	subProc int
	failed  chan struct{}
}

// worker is the consumer's name in the history.
func (c *consumer) worker() string {
	if c.group != "" {
		return "group-" + c.name + "-" + c.member
	}
	return "consumer-" + c.name
}

func (c *consumer) handler(inc int, failed chan struct{}) contract.StreamHandler {
	return func(ctx context.Context, batch []contract.EventRecord) error {
		evs := toEvents(batch)
		attempt := 0
		if d, ok := contract.DeliveryInfo(ctx); ok {
			attempt = d.Attempt
		}
		c.mu.Lock()
		fail := c.rng.Intn(100) < c.failPc
		c.mu.Unlock()
		poison := false
		for _, e := range evs {
			poison = poison || history.Poison(e.ID)
		}
		if c.park > 0 {
			fail = poison // a parking consumer fails exactly the poison batches
		}
		op := c.rec.Invoke(c.subProc, c.worker(), "", history.FDeliver, &history.Value{Name: c.name, Incarnation: inc, Events: evs, Attempt: attempt})
		if fail {
			c.rec.Complete(op, c.subProc, c.worker(), "", history.FDeliver, history.Fail, nil, errors.New("injected handler failure"))
			if c.park > 0 {
				if attempt >= c.park && len(batch) > 0 {
					c.passed(batch[len(batch)-1].SequenceNumber) // parked: the name moves on
				}
				return errors.New("poison event")
			}
			select {
			case failed <- struct{}{}:
			default:
			}
			return errors.New("injected handler failure")
		}
		c.rec.Complete(op, c.subProc, c.worker(), "", history.FDeliver, history.OK, nil, nil)
		if c.shared != nil {
			c.shared.handled(batch)
		}
		if n := len(batch); n > 0 {
			c.passed(batch[n-1].SequenceNumber)
		}
		return nil
	}
}

func (c *consumer) passed(seq uint64) {
	c.mu.Lock()
	c.handled = max(c.handled, seq)
	c.mu.Unlock()
}

// groupProgress is what the members of one consumer group handled.
type groupProgress struct {
	mu   sync.Mutex
	seqs map[uint64]bool
}

func (g *groupProgress) handled(batch []contract.EventRecord) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seqs == nil {
		g.seqs = map[uint64]bool{}
	}
	for _, r := range batch {
		g.seqs[r.SequenceNumber] = true
	}
}

// all reports whether the group handled every one of seqs.
func (g *groupProgress) all(seqs []uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range seqs {
		if !g.seqs[s] {
			return false
		}
	}
	return true
}

func (c *consumer) subscribe(ctx context.Context) error {
	c.mu.Lock()
	c.inc++
	inc := c.inc
	c.subProc = c.rec.NewProcess()
	c.failed = make(chan struct{}, 1)
	failed := c.failed
	c.mu.Unlock()
	op := c.rec.Invoke(c.subProc, c.worker(), "", history.FSubscribe, &history.Value{Name: c.name, Ctx: c.ctx, Incarnation: inc, Group: c.group, Park: c.park})
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var sub contract.Subscription
	var err error
	// the stream outlives sctx: its handler ctx is cancelled by Unsubscribe
	h := c.handler(inc, failed)
	var opts []contract.DurableOption
	if c.group != "" {
		opts = append(opts, contract.Group(contract.KeyField(c.group), groupPartitions))
	}
	if c.park > 0 {
		opts = append(opts, contract.RetryThenPark(c.park, 50*time.Millisecond, 400*time.Millisecond))
	}
	if c.ctx == "" {
		sub, err = c.cl.StreamAllDurable(context.WithoutCancel(sctx), c.name, h, opts...)
	} else {
		sub, err = c.cl.StreamToDurable(context.WithoutCancel(sctx), c.name, ctxQuery(c.ctx), h, opts...)
	}
	if err != nil {
		c.rec.Complete(op, c.subProc, c.worker(), "", history.FSubscribe, history.Fail, nil, err)
		return err
	}
	c.mu.Lock()
	c.sub, c.subOp = sub, op
	c.mu.Unlock()
	return nil
}

func (c *consumer) unsubscribe(reason string) {
	c.mu.Lock()
	sub, op, proc := c.sub, c.subOp, c.subProc
	c.sub = nil
	c.mu.Unlock()
	if sub == nil {
		return
	}
	sub.Unsubscribe()
	<-sub.Done() // a handler call in flight returns and the name is released
	c.rec.Complete(op, proc, c.worker(), "", history.FSubscribe, history.OK, nil, errors.New(reason))
}

// groupPartitions is the partition count of the fault suite's group.
const groupPartitions = 4

func (c *consumer) lastHandled() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handled
}

// run keeps the consumer subscribed until ctx ends.
func (c *consumer) run(ctx context.Context, resub <-chan struct{}) {
	for ctx.Err() == nil {
		if err := c.subscribe(ctx); err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		c.mu.Lock()
		failed := c.failed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			c.unsubscribe("run ended")
			return
		case <-failed:
			c.unsubscribe("handler failed")
		case <-resub:
			c.unsubscribe("forced resubscribe")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
