//go:build unix

package e2e

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// blackhole listens on 127.0.0.1, accepts connections and never writes:
// gRPC's connection attempt to it hangs until gRPC's own connect timeout
// (about 20 s), like one to a vanished pod IP.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestAttemptTimeoutSkipsBlackhole: a client whose first target accepts
// TCP but never answers reaches the second target after the attempt
// timeout instead of waiting for gRPC's connect timeout; without the bound
// the same call runs into its deadline.
func TestAttemptTimeoutSkipsBlackhole(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 2*time.Minute)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	live := c.Node(0).Addr()
	const typ = "e2e-attempt-timeout"
	byType := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{typ}}}}

	// Each call gets a fresh client, so that it starts at the blackhole.
	dial := func(opts ...client.Option) *client.Client {
		return c.DialClient(t, []string{blackhole(t), live}, opts...)
	}
	bounded := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		start := time.Now()
		err := f(cctx)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s through [blackhole, live] with WithAttemptTimeout(500ms): %v (after %v)", what, err, took)
		}
		if took > 5*time.Second {
			t.Fatalf("%s took %v; the attempt timeout of 500ms should have moved it on from the blackhole", what, took)
		}
		t.Logf("%s took %v", what, took)
	}

	var res contract.AppendResult
	bounded("Append", func(cctx context.Context) error {
		var err error
		res, err = dial(client.WithAttemptTimeout(500*time.Millisecond)).Append(cctx, []contract.NewEvent{ev(typ, `{"n":1}`)})
		return err
	})
	if res.CommittedCount != 1 || res.FirstSequenceNumber == 0 || res.FirstSequenceNumber != res.LastSequenceNumber {
		t.Fatalf("Append result %+v; want one event", res)
	}

	var qr contract.QueryResult
	bounded("Query", func(cctx context.Context) error {
		var err error
		qr, err = dial(client.WithAttemptTimeout(500*time.Millisecond)).Query(cctx, byType)
		return err
	})
	// The append was retried on the live node with the same idempotency
	// key: it is in the log exactly once.
	if len(qr.Events) != 1 || qr.Events[0].SequenceNumber != res.FirstSequenceNumber || !sameJSON(qr.Events[0].Payload, []byte(`{"n":1}`)) {
		t.Fatalf("events of type %s: %+v; want exactly the one appended at %d", typ, qr.Events, res.FirstSequenceNumber)
	}

	// A live stream's connect step is bounded too; the stream then lives on.
	got := make(chan []contract.EventRecord, 4)
	bounded("StreamTo", func(cctx context.Context) error {
		sub, err := dial(client.WithAttemptTimeout(500*time.Millisecond)).StreamTo(ctx, byType, func(_ context.Context, b []contract.EventRecord) error {
			got <- b
			return nil
		})
		if err == nil {
			t.Cleanup(sub.Unsubscribe)
		}
		return err
	})
	res2, err := c.Client(t, live).Append(ctx, []contract.NewEvent{ev(typ, `{"n":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if len(b) != 1 || b[0].SequenceNumber != res2.FirstSequenceNumber {
			t.Fatalf("stream delivered %+v; want the event at %d", b, res2.FirstSequenceNumber)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream opened past the blackhole delivered nothing within 10s")
	}

	// Without a per-attempt bound (0), and with the default (5s, which is
	// not applied when the ctx leaves less), the call waits on the
	// blackhole until its 3s deadline.
	for _, tc := range []struct {
		name string
		opts []client.Option
	}{{"WithAttemptTimeout(0)", []client.Option{client.WithAttemptTimeout(0)}}, {"default", nil}} {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		start := time.Now()
		_, err := dial(tc.opts...).Append(cctx, []contract.NewEvent{ev(typ+"-unbounded", `{}`)})
		cancel()
		if err == nil {
			t.Fatalf("%s: Append through [blackhole, live] with a 3s deadline succeeded after %v; want it stuck on the blackhole", tc.name, time.Since(start))
		}
		if code := status.Code(err); code != codes.DeadlineExceeded {
			t.Fatalf("%s: Append failed with %v (%v); want DEADLINE_EXCEEDED", tc.name, code, err)
		}
	}
}

// TestAdminFailsOver: Admin() through a client whose first target is a
// killed node answers from the second.
func TestAdminFailsOver(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
	ctx := testCtx(t, 2*time.Minute)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Kill a follower, so that the leader stays: a Remove forwarded to a
	// just-killed leader would rightly fail with an unknown outcome.
	dead, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := (dead + 1) % c.Len()
	if err := c.Node(dead).Kill(); err != nil {
		t.Fatal(err)
	}
	want := c.Node(other).ID()
	targets := []string{c.Node(dead).Addr(), c.Node(other).Addr()}
	cl := c.DialClient(t, targets, client.WithAttemptTimeout(2*time.Second))

	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := cl.Admin().Status(cctx, &factstrv1.StatusRequest{})
	if err != nil {
		t.Fatalf("Admin().Status with the first target killed: %v", err)
	}
	if st.GetNodeId() != want {
		t.Fatalf("Admin().Status answered by %q; want the second target %q", st.GetNodeId(), want)
	}

	// A non-idempotent call moves on too while the first target cannot be
	// reached (nothing was sent to it); the second answers NOT_FOUND.
	cl2 := c.DialClient(t, targets)
	_, err = cl2.Admin().Remove(cctx, &factstrv1.RemoveRequest{NodeId: "no-such-node"})
	if code := status.Code(err); code != codes.NotFound {
		t.Fatalf("Admin().Remove of an unknown node with the first target killed: %v (%v); want NOT_FOUND from the second target", code, err)
	}
}
