package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/memstore"
)

// behindStore is a store that says how far behind its cluster it is.
type behindStore struct {
	*memstore.Store
}

func (behindStore) Freshness() (uint64, uint64, time.Duration) { return 7, 9, 1500 * time.Millisecond }

// A stream that asks for progress gets one at once and then about every
// interval, from a store that can tell; a stream that does not ask, or a
// store that cannot tell, gets none. Durable streams likewise.
func TestStreamProgress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name  string
		store contract.EventStore
		ms    uint32
		want  bool
	}{
		{"asked, store can tell", behindStore{memstore.New()}, 100, true},
		{"not asked", behindStore{memstore.New()}, 0, false},
		{"asked, store cannot tell", memstore.New(), 100, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := testgrpc.ServeConn(t, func(srv *grpc.Server) { NewEventStore(c.store, log).Register(srv) }, CodecOption())
			es := factstrv1.NewEventStoreServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			st, err := es.Stream(ctx, &factstrv1.StreamRequest{ProgressIntervalMs: c.ms})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := st.Recv(); err != nil || m.GetSubscribed() == nil {
				t.Fatalf("first message %v, %v; want subscribed", m, err)
			}
			ds, err := es.StreamDurable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{Name: "d", ProgressIntervalMs: c.ms}}}); err != nil {
				t.Fatal(err)
			}
			if m, err := ds.Recv(); err != nil || m.GetSubscribed() == nil {
				t.Fatalf("first durable message %v, %v; want subscribed", m, err)
			}
			type kind struct {
				name string
				next func() (*factstrv1.StreamProgress, error)
			}
			kinds := []kind{
				{"live", func() (*factstrv1.StreamProgress, error) { m, err := st.Recv(); return m.GetProgress(), err }},
				{"durable", func() (*factstrv1.StreamProgress, error) { m, err := ds.Recv(); return m.GetProgress(), err }},
			}
			for i, k := range kinds {
				if !c.want {
					continue
				}
				start := time.Now()
				for j := range 3 {
					p, err := k.next()
					if err != nil || p == nil {
						t.Fatalf("%s: message %d: %v, %v; want progress", k.name, j, p, err)
					}
					if p.GetAppliedIndex() != 7 || p.GetClusterIndex() != 9 || p.GetBehindSeconds() != 1.5 {
						t.Fatalf("%s: progress %v; want the store's 7, 9, 1.5 s", k.name, p)
					}
				}
				// Timed on the first stream only (the other's messages
				// queue meanwhile): one at once, two more an interval apart.
				if took := time.Since(start); i == 0 && took < 150*time.Millisecond {
					t.Fatalf("%s: 3 progress messages in %v; want about one per 100 ms", k.name, took)
				}
			}
			if !c.want {
				// Nothing comes: a commit is the next message.
				if _, err := c.store.Append(ctx, []contract.NewEvent{{Type: "A", Payload: []byte(`{}`)}}); err != nil {
					t.Fatal(err)
				}
				if m, err := st.Recv(); err != nil || m.GetBatch() == nil {
					t.Fatalf("live: %v, %v; want the batch, no progress", m, err)
				}
				if m, err := ds.Recv(); err != nil || m.GetBatch() == nil {
					t.Fatalf("durable: %v, %v; want the batch, no progress", m, err)
				}
			}
		})
	}
}
