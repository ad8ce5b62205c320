package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
)

// budgetStore opens a bbolt store with the given stream budgets and fills
// it with batches of events of payloadBytes each.
func budgetStore(t *testing.T, batches, perBatch, payloadBytes int, opts ...boltstore.Option) *boltstore.Store {
	t.Helper()
	opts = append([]boltstore.Option{boltstore.WithNoSync(true)}, opts...)
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "events.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	payload, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", payloadBytes)})
	for b := 0; b < batches; b++ {
		evs := make([]contract.NewEvent, perBatch)
		for i := range evs {
			evs[i] = contract.NewEvent{Type: "filled", Payload: payload}
		}
		if _, err := s.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// rawConn dials addr with fixed, small HTTP/2 windows, so a stream that is
// not read blocks its server early and the client buffers little.
func rawConn(t *testing.T, target string) factstrv1.EventStoreServiceClient {
	t.Helper()
	c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return factstrv1.NewEventStoreServiceClient(c)
}

// recvUntil reads batches until the stream has delivered through last,
// checking they continue after from without gap or duplicate; it returns
// the stream's error if it ends first, with the position reached.
func recvUntil(st grpc.ServerStreamingClient[factstrv1.StreamResponse], from, last uint64) (uint64, error) {
	pos := from
	for pos < last {
		m, err := st.Recv()
		if err != nil {
			return pos, err
		}
		for _, e := range m.GetBatch().GetEvents() {
			if e.GetSequenceNumber() != pos+1 {
				return pos, fmt.Errorf("got event %d after %d: gap or duplicate", e.GetSequenceNumber(), pos)
			}
			pos++
		}
	}
	return pos, nil
}

// The finding replayed: 20 catch-up streams whose clients do not read, on
// a 20 MB log. Before budgets each pinned up to 128 batches (the heap grew
// by 338 MiB here); now read-ahead stays within the node budget (49 MiB in
// all), and every stream still delivers the whole log in order once read.
func TestIdleCatchUpStreamsStayWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 20 MB log")
	}
	const (
		streams        = 20
		subscriberBuf  = 1 << 20
		nodeBuf        = 8 << 20
		maxHeapGrowth  = 80 << 20 // node budget, batches in handlers, HTTP/2 buffers, both ends (measured 49 MiB)
		batches, per   = 200, 100
		payloadBytes   = 1000
		sampleDuration = 3 * time.Second
	)
	store := budgetStore(t, batches, per, payloadBytes, boltstore.WithStreamBudgets(subscriberBuf, nodeBuf, time.Hour))
	head := store.Replica().Head()
	conn := serve(t, func(s *grpc.Server) { server.NewEventStore(store, nil).Register(s) })
	// About 7 s on a quiet machine with -race; the bound is for a machine
	// busy with other test packages (a 2-minute bound once ran out there).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	heap0, _ := heapAndGoroutines()
	var sts []grpc.ServerStreamingClient[factstrv1.StreamResponse]
	for i := 0; i < streams; i++ {
		// One connection each: a shared connection window would hold
		// back all but the first stream before they read anything.
		st, err := rawConn(t, conn.Target()).Stream(ctx, &factstrv1.StreamRequest{CatchUp: true})
		if err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	// The streams replay as fast as their windows allow and then wait for
	// their clients; sample the heap over that time.
	var peak uint64
	for end := time.Now().Add(sampleDuration); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		h, _ := heapAndGoroutines()
		peak = max(peak, h)
	}
	growth := int64(peak) - int64(heap0)
	t.Logf("%d idle catch-up streams on a %d-event log: heap grew by at most %d MiB", streams, head, growth>>20)
	if growth > maxHeapGrowth {
		t.Fatalf("heap grew by %d bytes, bound %d", growth, maxHeapGrowth)
	}
	// Still whole: two of the streams, read now, deliver every event once.
	for i := range 2 {
		start := time.Now()
		if pos, err := recvUntil(sts[i], 0, head); err != nil {
			t.Fatalf("stream %d stopped at %d of %d after %v: %v", i, pos, head, time.Since(start), err)
		}
		t.Logf("stream %d delivered the whole log in %v", i, time.Since(start))
	}
}

type tooSlowObserver struct {
	once sync.Once
	slow chan struct{}
}

func (o *tooSlowObserver) SubscriberStarted(string)            {}
func (o *tooSlowObserver) SubscriberEnded(string)              {}
func (o *tooSlowObserver) DurableAt(string, uint64, time.Time) {}
func (o *tooSlowObserver) DurableEnded(string)                 {}
func (o *tooSlowObserver) SubscriberTooSlow()                  { o.once.Do(func() { close(o.slow) }) }

// A live subscriber whose client stops reading ends with ResourceExhausted
// once the stall timeout passes, is counted, and resumes by position with
// catch-up: no gap, no duplicate.
func TestSlowSubscriberEndsAndResumes(t *testing.T) {
	store := budgetStore(t, 50, 20, 2000, boltstore.WithStreamBudgets(64<<10, 0, 200*time.Millisecond))
	head := store.Replica().Head()
	obs := &tooSlowObserver{slow: make(chan struct{})}
	conn := serve(t, func(s *grpc.Server) { server.NewEventStore(store, nil).WithObserver(obs).Register(s) })
	cl := rawConn(t, conn.Target())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := cl.Stream(ctx, &factstrv1.StreamRequest{CatchUp: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-obs.slow:
	case <-time.After(20 * time.Second):
		t.Fatal("a stream whose client does not read was not ended as too slow within 20s")
	}
	pos, err := recvUntil(st, 0, head)
	if err == nil {
		t.Fatalf("the slow stream delivered all %d events; its end was expected first", head)
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "catch-up") {
		t.Fatalf("slow stream ended with %v; want ResourceExhausted saying to resume with catch-up", err)
	}
	if pos == 0 || pos >= head {
		t.Fatalf("the slow stream delivered through %d of %d before it ended", pos, head)
	}

	resumed, err := cl.Stream(ctx, &factstrv1.StreamRequest{CatchUp: true, Query: &factstrv1.EventQuery{MinSequenceNumber: pos}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recvUntil(resumed, pos, head); err != nil {
		t.Fatalf("resumed stream stopped at %d of %d: %v", got, head, err)
	}
}
