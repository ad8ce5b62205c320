package runner

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// liveSub is a live (non-durable) subscriber: StreamAll, or StreamTo for
// one context. It records every subscribe call (history.FLiveSubscribe)
// and every delivered batch (history.FLive) with its incarnation, and
// subscribes again when the call fails, when the stream ends on its own,
// and now and then at random, so that the checker sees many starts.
type liveSub struct {
	name string
	ctx  string // "" : StreamAll
	node string // pinned node name, or "any"
	cl   *client.Client
	rec  *history.Recorder
	rng  *rand.Rand
	c    *cluster

	inc, subs, ended int
	mu               sync.Mutex // guards batches and lastSeq (written by handlers)
	batches          int
	lastSeq          uint64
}

// startLive starts the live subscribers on their own clients (dialled with
// dial, which the caller closes): StreamAll pinned to a node that is a
// follower at the start, and StreamTo for context c0 over every node. They
// run until ctx ends; wg tracks them.
func (c *cluster) startLive(ctx context.Context, dial func([]string) *client.Client, wg *sync.WaitGroup) {
	rng := rand.New(rand.NewSource(c.cfg.Seed ^ 0x11fe))
	f := 1
	if l := c.leader(ctx); l > 0 {
		f = l%c.cfg.Nodes + 1
	}
	var all []string
	for i := 1; i <= c.cfg.Nodes; i++ {
		all = append(all, grpcAddr(i))
	}
	subs := []*liveSub{
		{name: "live-all", node: fmt.Sprintf("n%d", f), cl: dial([]string{grpcAddr(f)})},
		{name: "live-c0", ctx: "c0", node: "any", cl: dial(all)},
	}
	for _, s := range subs {
		s.rec, s.c, s.rng = c.rec, c, rand.New(rand.NewSource(rng.Int63()))
		wg.Add(1)
		go func(s *liveSub) {
			defer wg.Done()
			s.run(ctx)
			s.mu.Lock()
			defer s.mu.Unlock()
			c.note("live subscriber %s (%s): %d subscriptions, %d ended on their own, %d batches delivered, last seq %d",
				s.name, s.node, s.subs, s.ended, s.batches, s.lastSeq)
		}(s)
	}
}

func (s *liveSub) worker() string { return "live-" + s.name }

// subscribe makes one StreamAll / StreamTo call; ended is closed when the
// subscription ends on its own (the client gave up resuming it).
func (s *liveSub) subscribe(ctx context.Context) (contract.Subscription, <-chan struct{}, error) {
	s.inc++
	inc, proc := s.inc, s.rec.NewProcess()
	op := s.rec.Invoke(proc, s.worker(), s.node, history.FLiveSubscribe, &history.Value{Name: s.name, Ctx: s.ctx, Incarnation: inc})
	ended := make(chan struct{})
	h := s.handler(proc, inc, ended)
	var sub contract.Subscription
	var err error
	// The subscription lives as long as ctx: the call's own retries are
	// bounded by the client's retry timeout.
	if s.ctx == "" {
		sub, err = s.cl.StreamAll(ctx, h)
	} else {
		sub, err = s.cl.StreamTo(ctx, ctxQuery(s.ctx), h)
	}
	if err != nil {
		s.rec.Complete(op, proc, s.worker(), s.node, history.FLiveSubscribe, history.Fail, nil, err)
		return nil, nil, err
	}
	s.rec.Complete(op, proc, s.worker(), s.node, history.FLiveSubscribe, history.OK, nil, nil)
	s.subs++
	return sub, ended, nil
}

// handler records each batch of incarnation inc as a history.FLive op and
// closes ended when the subscription's handler context ends.
func (s *liveSub) handler(proc, inc int, ended chan struct{}) contract.StreamHandler {
	var once sync.Once
	return func(hctx context.Context, batch []contract.EventRecord) error {
		once.Do(func() { context.AfterFunc(hctx, func() { close(ended) }) })
		evs := toEvents(batch)
		o := s.rec.Invoke(proc, s.worker(), s.node, history.FLive, &history.Value{Name: s.name, Ctx: s.ctx, Incarnation: inc, Events: evs})
		s.rec.Complete(o, proc, s.worker(), s.node, history.FLive, history.OK, nil, nil)
		s.mu.Lock()
		s.batches++
		if n := len(batch); n > 0 {
			s.lastSeq = max(s.lastSeq, batch[n-1].SequenceNumber)
		}
		s.mu.Unlock()
		return nil
	}
}

func (s *liveSub) run(ctx context.Context) {
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		sub, ended, err := s.subscribe(sctx)
		if err != nil {
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-ended:
			if ctx.Err() == nil {
				s.ended++
				s.c.note("live subscriber %s#%d ended on its own; subscribing again", s.name, s.inc)
			}
		case <-time.After(time.Duration(10+s.rng.Intn(20)) * time.Second):
		}
		sub.Unsubscribe()
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
}
