package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/factstr/factstr-go/bench/load"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

// consumer is one durable consumer of the durable workload: subscribe
// starts it with handler. A consumer group joins here as another kind of
// consumer (several members on one name), each member's handler recording
// into the same consumerStats.
type consumer struct {
	name      string
	subscribe func(ctx context.Context, handler contract.StreamHandler) (contract.Subscription, error)
	// group: the consumer is one member of the consumer group name; the
	// members record into one consumerStats.
	group bool
}

// consumerStats records what one consumer handled: the lag of each event
// (from its OccurredAt, the commit time the leader stamped, to the
// handler call) and duplicates.
type consumerStats struct {
	mu         sync.Mutex
	hist       *hdrhistogram.Histogram
	handled    int64
	duplicates int64
	last       uint64
	// seen replaces last for a consumer group, whose members handle
	// their partitions' events in no common order.
	seen map[uint64]bool
}

// handle records the events after *from (the warm-up's last) while
// measuring is set.
func (st *consumerStats) handle(measuring *atomic.Bool, from *atomic.Uint64) contract.StreamHandler {
	return func(_ context.Context, batch []contract.EventRecord) error {
		now := time.Now()
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, ev := range batch {
			if st.seen != nil {
				if st.seen[ev.SequenceNumber] {
					st.duplicates++
					continue
				}
				st.seen[ev.SequenceNumber] = true
			} else if ev.SequenceNumber <= st.last {
				st.duplicates++
				continue
			}
			st.last = max(st.last, ev.SequenceNumber)
			if measuring.Load() && ev.SequenceNumber > from.Load() {
				_ = st.hist.RecordValue(max(now.Sub(ev.OccurredAt).Microseconds(), 1))
				st.handled++
			}
		}
		return nil
	}
}

// durableConsumers are --consumers durable consumers, each on a name of
// its own, started at the end of the log, spread over the connections;
// with --group-members N, N members of one consumer group instead,
// partitioned by the appending worker.
func (f *benchFlags) durableConsumers(conns []*client.Client, q contract.EventQuery, run string) []consumer {
	if f.groupMembers > 0 {
		name := "bench-group-" + run
		out := make([]consumer, f.groupMembers)
		for i := range out {
			c := conns[i%len(conns)]
			out[i] = consumer{name: name, group: true, subscribe: func(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
				return c.StreamToDurable(ctx, name, q, h, contract.StartAtEnd(), contract.Group(contract.KeyField("w"), contract.DefaultGroupPartitions))
			}}
		}
		return out
	}
	out := make([]consumer, f.consumers)
	for i := range out {
		name := fmt.Sprintf("bench-durable-%s-%d", run, i)
		c := conns[i%len(conns)]
		out[i] = consumer{name: name, subscribe: func(ctx context.Context, h contract.StreamHandler) (contract.Subscription, error) {
			return c.StreamToDurable(ctx, name, q, h, contract.StartAtEnd())
		}}
	}
	return out
}

// durable runs the durable workload: durable consumers follow while the
// workers append (at --rate, or as fast as the cluster takes it). It
// reports the consumers' lag, from each event's commit time to its
// handler, and the events they handled per second.
func (f *benchFlags) durable(ctx context.Context, conns []*client.Client, opts load.Options, run string, cutOff *atomic.Int64) (load.Result, error) {
	typ := "bench-durable-" + run
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{typ}}}}
	consumers := f.durableConsumers(conns, q, run)
	var measuring atomic.Bool
	var from, warmLast atomic.Uint64
	stats := make([]*consumerStats, len(consumers))
	names := map[string]bool{}
	var subs []contract.Subscription
	defer func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
		// The names are the run's own: delete them (needs the admin role;
		// a reader's run leaves them, which is harmless).
		for name := range names {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = conns[0].DeleteDurable(dctx, name, true)
			cancel()
		}
	}()
	var groupStats *consumerStats
	for i, c := range consumers {
		names[c.name] = true
		switch {
		case !c.group:
			stats[i] = &consumerStats{hist: load.NewHistogram()}
		case groupStats == nil:
			groupStats = &consumerStats{hist: load.NewHistogram(), seen: map[uint64]bool{}}
			stats[i] = groupStats
		}
		st := stats[i]
		if st == nil {
			st = groupStats
		}
		sub, err := c.subscribe(ctx, st.handle(&measuring, &from))
		if err != nil {
			return load.Result{}, fmt.Errorf("durable consumer %s: %w", c.name, err)
		}
		subs = append(subs, sub)
	}
	var written atomic.Int64
	op := func(ctx context.Context, w int) (int, error) {
		evs := make([]contract.NewEvent, f.batch)
		for i := range evs {
			evs[i] = contract.NewEvent{Type: typ, Payload: load.Payload(f.payloadBytes, map[string]any{"w": w})}
		}
		r, err := conns[w%len(conns)].Append(ctx, evs)
		if err == nil && measuring.Load() {
			written.Add(int64(r.CommittedCount))
		} else if err == nil {
			for last := warmLast.Load(); r.LastSequenceNumber > last && !warmLast.CompareAndSwap(last, r.LastSequenceNumber); last = warmLast.Load() {
			}
		}
		return int(r.CommittedCount), err
	}
	warm := opts
	warm.Warmup, opts.Warmup = 0, 0
	if warm.Duration = f.warmup; warm.Duration > 0 {
		warm.Progress = nil
		load.Run(ctx, warm, op)
	}
	// What the warm-up appended is not measured, even if a consumer
	// handles it after this point.
	from.Store(warmLast.Load())
	measuring.Store(true)
	res := load.Run(ctx, opts, countCutOff(op, cutOff))
	// Events appended while measuring are all counted by the consumers
	// (none during the warm-up is): wait for them to drain.
	want := written.Load() * int64(len(names)) // a group handles each event once
	stats = slices.DeleteFunc(stats, func(st *consumerStats) bool { return st == nil })
	var handled, dups int64
	drain := time.Now().Add(30 * time.Second)
	for {
		handled, dups = 0, 0
		for _, st := range stats {
			st.mu.Lock()
			handled += st.handled
			dups += st.duplicates
			st.mu.Unlock()
		}
		if handled >= want || time.Now().After(drain) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	measuring.Store(false)
	h := load.NewHistogram()
	for _, st := range stats {
		st.mu.Lock()
		h.Merge(st.hist)
		st.mu.Unlock()
	}
	l := load.LatencyOf(h)
	res.Extra = map[string]float64{
		"consumers":                float64(len(names)),
		"group_members":            float64(f.groupMembers),
		"handled_events":           float64(handled),
		"missing_events":           float64(max(want-handled, 0)),
		"duplicate_events":         float64(dups),
		"handled_events_per_sec":   float64(handled) / res.Seconds,
		"consumer_lag_p50_ms":      l.P50,
		"consumer_lag_p90_ms":      l.P90,
		"consumer_lag_p99_ms":      l.P99,
		"consumer_lag_p99_9_ms":    l.P999,
		"consumer_lag_max_ms":      l.Max,
		"appended_events_measured": float64(written.Load()),
	}
	return res, nil
}
