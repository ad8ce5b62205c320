package client_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/memstore"
)

// remoteStore is the Go client against one in-process node serving a
// memstore over a loopback socket: the client's side of the contract
// (stream ending, durable acknowledgements) without starting a cluster.
type remoteStore struct {
	*client.Client
	stop func()
	once sync.Once
}

func (s *remoteStore) Close() error {
	err := s.Client.Close()
	s.once.Do(s.stop)
	return err
}

func serveMemstore(t *testing.T) *remoteStore {
	t.Helper()
	store := memstore.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := testgrpc.Serve(t, func(srv *grpc.Server) {
		server.NewEventStore(store, log).Register(srv)
		server.NewDurables(store).Register(srv)
	}, server.CodecOption())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{addr}, client.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	return &remoteStore{Client: c, stop: func() { _ = store.Close() }}
}

func TestConformanceOverGRPC(t *testing.T) {
	conformance.Run(t, func(t *testing.T) contract.EventStore {
		s := serveMemstore(t)
		t.Cleanup(func() { s.once.Do(s.stop) })
		return s
	})
}
