//go:build unix

package e2e

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// clusterStore is the Go client against a cluster of its own; Close closes
// the client and stops the cluster.
type clusterStore struct {
	*client.Client
	t        *testing.T
	c        *testcluster.Cluster
	once     sync.Once
	stopTime *atomic.Int64 // nanoseconds spent stopping clusters
}

func (s *clusterStore) Close() error {
	err := s.Client.Close()
	s.once.Do(func() {
		t0 := time.Now()
		if serr := s.c.Stop(); serr != nil {
			s.t.Errorf("stopping the cluster (SIGTERM) did not end every node with exit code 0: %v", serr)
		}
		s.stopTime.Add(int64(time.Since(t0)))
	})
	return err
}

// TestConformanceThroughClient runs the whole contract suite through
// client.Dial against three real processes, the client knowing only one
// follower. Every subtest gets a fresh cluster.
func TestConformanceThroughClient(t *testing.T) {
	skipShort(t)
	testcluster.Build(t)
	var (
		clusters         atomic.Int64
		startTime, ready atomic.Int64 // nanoseconds spent in Start and finding the follower
		stopTime         atomic.Int64
		begin            = time.Now()
	)
	conformance.Run(t, func(t *testing.T) contract.EventStore {
		t0 := time.Now()
		c := testcluster.Start(t, testcluster.Options{Nodes: 3})
		startTime.Add(int64(time.Since(t0)))
		ctx := testCtx(t, 30*time.Second)
		f, err := c.Follower(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ready.Add(int64(time.Since(t0)))
		clusters.Add(1)
		// conformance.Run closes the store when the subtest ends.
		return &clusterStore{Client: c.Client(t, c.Node(f).Addr()), t: t, c: c, stopTime: &stopTime}
	})
	n := clusters.Load()
	if n > 0 {
		t.Logf("%d clusters in %v; per cluster: start %v, start+follower %v, close %v",
			n, time.Since(begin).Round(time.Millisecond),
			(time.Duration(startTime.Load()) / time.Duration(n)).Round(time.Millisecond),
			(time.Duration(ready.Load()) / time.Duration(n)).Round(time.Millisecond),
			(time.Duration(stopTime.Load()) / time.Duration(n)).Round(time.Millisecond))
	}
}
