package boltstore_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, opts ...boltstore.Option) (*boltstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := boltstore.Open(path, append([]boltstore.Option{boltstore.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopen(t testing.TB, path string, opts ...boltstore.Option) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, append([]boltstore.Option{boltstore.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ev(typ, payload string) contract.NewEvent {
	return contract.NewEvent{Type: typ, Payload: json.RawMessage(payload)}
}

func typeQ(ts ...string) contract.EventQuery {
	return contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: ts}}}
}

func predQ(types []string, preds ...string) contract.EventQuery {
	f := contract.EventFilter{EventTypes: types, PayloadPredicates: []json.RawMessage{}}
	for _, p := range preds {
		f.PayloadPredicates = append(f.PayloadPredicates, json.RawMessage(p))
	}
	return contract.EventQuery{Filters: []contract.EventFilter{f}}
}

func mustAppend(t testing.TB, s contract.EventStore, events ...contract.NewEvent) contract.AppendResult {
	t.Helper()
	r, err := s.Append(context.Background(), events)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return r
}

func mustQuery(t testing.TB, s contract.EventStore, q contract.EventQuery) contract.QueryResult {
	t.Helper()
	r, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	return r
}

func seqs(recs []contract.EventRecord) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.SequenceNumber)
	}
	return out
}
