package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
)

// Benchmarks on a 3-node cluster over real loopback TCP, with Raft's log
// fsynced per batch (raft-boltdb) as in production. Run with:
//
//	go test -run '^$' -bench Cluster -benchtime 3s ./cluster/
func benchCluster(b *testing.B) *testCluster {
	b.Helper()
	tune := func(cfg *cluster.Config) {
		// Production timeouts: a loaded benchmark machine must not hold
		// elections in the middle of a run.
		cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 1e9, 1e9, 5e8
	}
	return newCluster(b, 3, tune)
}

var payload200 = `{"order":"` + strings.Repeat("x", 170) + `","n":%d}`

// runCallers runs b.N operations spread over callers goroutines.
func runCallers(b *testing.B, callers int, op func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d operations failed", f, b.N)
	}
}

func BenchmarkClusterAppend(b *testing.B) {
	c := benchCluster(b)
	for _, callers := range []int{1, 16, 64} {
		for _, via := range []string{"leader", "follower"} {
			b.Run(fmt.Sprintf("callers=%d/via=%s", callers, via), func(b *testing.B) {
				n := c.leader()
				if via == "follower" {
					n = c.follower()
				}
				ctx := context.Background()
				runCallers(b, callers, func(i int64) error {
					_, err := n.Append(ctx, []contract.NewEvent{{Type: "bench", Payload: []byte(fmt.Sprintf(payload200, i))}})
					return err
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}

func BenchmarkClusterAppendIf(b *testing.B) {
	c := benchCluster(b)
	const contexts = 1000
	for _, callers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			n := c.leader()
			ctx := context.Background()
			var conflicts atomic.Int64
			runCallers(b, callers, func(i int64) error {
				acct := fmt.Sprintf(`{"account":"a%d"}`, i%contexts)
				q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"deposit"}, PayloadPredicates: []json.RawMessage{json.RawMessage(acct)}}}}
				for {
					res, err := n.Query(ctx, q)
					if err != nil {
						return err
					}
					_, err = n.AppendIf(ctx, []contract.NewEvent{{Type: "deposit", Payload: []byte(acct)}}, q, res.CurrentContextVersion)
					if _, ok := err.(*contract.ConflictError); ok {
						conflicts.Add(1)
						continue
					}
					return err
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
			b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/op")
		})
	}
}

func BenchmarkClusterFollowerRead(b *testing.B) {
	c := benchCluster(b)
	leader := c.leader()
	for i := range 100 {
		if _, err := leader.Append(context.Background(), []contract.NewEvent{{Type: "r", Payload: []byte(fmt.Sprintf(`{"k":%d}`, i%10))}}); err != nil {
			b.Fatal(err)
		}
	}
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"r"}, PayloadPredicates: []json.RawMessage{json.RawMessage(`{"k":3}`)}}}}
	for _, mode := range []string{"linearizable", "local"} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode, callers), func(b *testing.B) {
				f := c.follower()
				ctx := context.Background()
				if mode == "local" {
					ctx = contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local})
				}
				runCallers(b, callers, func(int64) error {
					_, err := f.Query(ctx, q)
					return err
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
			})
		}
	}
}

// BenchmarkClusterDurableReplay replays a backlog of single-event batches
// to a durable stream on a follower: what a consumer does after a fault or
// a deploy. Each iteration is one batch; the cursor writes are coalesced,
// so the rate is bounded by delivery, not by one Raft round trip per batch.
func BenchmarkClusterDurableReplay(b *testing.B) {
	c := benchCluster(b)
	leader, follower := c.leader(), c.follower()
	ctx := context.Background()
	var appended atomic.Int64
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 32 {
				if _, err := leader.Append(ctx, []contract.NewEvent{{Type: "bench", Payload: []byte(fmt.Sprintf(payload200, i))}}); err != nil {
					b.Error(err)
					return
				}
				appended.Add(1)
			}
		}()
	}
	wg.Wait()
	waitHead(b, follower, uint64(appended.Load()))
	var delivered int
	b.ResetTimer()
	sub, err := follower.StreamAllDurable(ctx, fmt.Sprintf("replay-%d", b.N), func(_ context.Context, batch []contract.EventRecord) error {
		delivered += len(batch)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	sub.Unsubscribe() // stores the cursor
	b.StopTimer()
	if delivered != b.N {
		b.Fatalf("replayed %d events, want %d", delivered, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}
