package server_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

// 3,000 idle subscriptions, spread over connections as the per-connection
// cap requires, cost a bounded amount of memory and goroutines (client and
// server share this process, so the bound covers both ends).
func TestIdleStreamsMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 3,000 streams")
	}
	const (
		streams       = 3000
		perConn       = server.DefaultMaxSubscriptionsPerConn
		maxHeapPer    = 32 << 10 // bytes per stream, both ends (about 9 KiB measured with -race)
		maxGoroutines = 8        // per stream, both ends
	)
	store := memstore.New()
	defer store.Close()
	conn := serve(t, func(s *grpc.Server) { server.NewEventStore(store, nil).Register(s) }, server.ConnLimits{}.ServerOptions()...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	heap0, g0 := heapAndGoroutines()
	var conns []*grpc.ClientConn
	for i := 0; i < streams; i++ {
		if i%perConn == 0 {
			c, err := grpc.NewClient(conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		st, err := factstrv1.NewEventStoreServiceClient(conns[len(conns)-1]).Stream(ctx, &factstrv1.StreamRequest{})
		if err == nil {
			_, err = st.Recv() // Subscribed: the server holds it
		}
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	heap1, g1 := heapAndGoroutines()
	perStream := (int64(heap1) - int64(heap0)) / streams
	goroutines := (g1 - g0) / streams
	t.Logf("%d idle streams on %d connections: %d bytes of heap and %d goroutines per stream", streams, len(conns), perStream, goroutines)
	if perStream > maxHeapPer {
		t.Fatalf("%d bytes of heap per idle stream, bound %d", perStream, maxHeapPer)
	}
	if goroutines > maxGoroutines {
		t.Fatalf("%d goroutines per idle stream, bound %d", goroutines, maxGoroutines)
	}
}

func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}
