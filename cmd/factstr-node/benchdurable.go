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
	// seen holds every sequence number handled after the warm-up: a
	// consumer group's members handle their partitions' events in no
	// common order, so duplicates are told by number, and the events of
	// the measured appends are counted against it at the end.
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
			if ev.SequenceNumber <= from.Load() {
				continue // the warm-up's
			}
			if st.seen[ev.SequenceNumber] {
				st.duplicates++
				continue
			}
			st.seen[ev.SequenceNumber] = true
			if measuring.Load() {
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
			stats[i] = &consumerStats{hist: load.NewHistogram(), seen: map[uint64]bool{}}
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
	var ackedMu sync.Mutex
	var acked [][2]uint64 // the sequence ranges of the appends acknowledged while measuring
	op := func(ctx context.Context, w int) (int, error) {
		evs := make([]contract.NewEvent, f.batch)
		for i := range evs {
			evs[i] = contract.NewEvent{Type: typ, Payload: load.Payload(f.payloadBytes, map[string]any{"w": w})}
		}
		r, err := conns[w%len(conns)].Append(ctx, evs)
		if err == nil && measuring.Load() {
			written.Add(int64(r.CommittedCount))
			ackedMu.Lock()
			acked = append(acked, [2]uint64{r.FirstSequenceNumber, r.LastSequenceNumber})
			ackedMu.Unlock()
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
	// Every event of an append acknowledged while measuring must reach
	// every name once (an append that failed or was cut off may have
	// committed too: its events are handled, and not asked for): wait
	// for them to drain.
	stats = slices.DeleteFunc(stats, func(st *consumerStats) bool { return st == nil })
	ackedMu.Lock()
	ranges := slices.Clone(acked)
	ackedMu.Unlock()
	want := written.Load() * int64(len(stats)) // a group handles each event once
	var handled, got, dups int64
	drain := time.Now().Add(30 * time.Second)
	for {
		handled, got, dups = 0, 0, 0
		for _, st := range stats {
			st.mu.Lock()
			handled += st.handled
			dups += st.duplicates
			for _, r := range ranges {
				for seq := r[0]; seq <= r[1]; seq++ {
					if st.seen[seq] {
						got++
					}
				}
			}
			st.mu.Unlock()
		}
		if got >= want || time.Now().After(drain) || ctx.Err() != nil {
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
		"consumers":                float64(len(stats)),
		"group_members":            float64(f.groupMembers),
		"handled_events":           float64(handled),
		"missing_events":           float64(max(want-got, 0)),
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
