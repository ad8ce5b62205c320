package server

import (
	"context"
	"sync"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// FreshnessSource is a store that knows how far it may be behind its
// cluster (a cluster node): its applied Raft index, the leader's commit
// index as last learned, and the time since it last had applied everything
// the leader had committed.
type FreshnessSource interface {
	Freshness() (appliedIndex, clusterIndex uint64, behind time.Duration)
}

// Bounds of a subscription's progress interval.
const (
	minProgressEvery = 100 * time.Millisecond
	maxProgressEvery = time.Minute
)

// progressEvery is how often a subscription that asked for it gets a
// StreamProgress; 0 when it did not ask or the store cannot tell (a store
// that is not part of a cluster is never behind).
func (s *EventStore) progressEvery(ms uint32) time.Duration {
	if ms == 0 {
		return 0
	}
	if _, ok := s.store.(FreshnessSource); !ok {
		return 0
	}
	return min(max(time.Duration(ms)*time.Millisecond, minProgressEvery), maxProgressEvery)
}

func (s *EventStore) progress() *factstrv1.StreamProgress {
	applied, cluster, behind := s.store.(FreshnessSource).Freshness()
	return &factstrv1.StreamProgress{AppliedIndex: applied, ClusterIndex: cluster, BehindSeconds: behind.Seconds()}
}

// startProgress sends a StreamProgress at once and then every every until ctx ends or a
// send fails; stop ends it and waits (send must give up when its ctx ends:
// the stream's sender does), so no progress follows what the RPC sends
// last. Calling stop again does nothing. every 0: nothing is sent.
func (s *EventStore) startProgress(ctx context.Context, every time.Duration, send func(context.Context, *factstrv1.StreamProgress) error) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The send's ctx is the loop's: stop interrupts a send that waits
		// for the client's flow control.
		// The first right away: it tells the client that this node
		// reports progress, so that its silence from now on means
		// something.
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if send(ctx, s.progress()) != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}
