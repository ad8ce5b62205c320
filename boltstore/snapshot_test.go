package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
)

func TestSnapshotRestore(t *testing.T) {
	src, _ := openStore(t, boltstore.WithReplicated())
	if _, err := src.Apply(randomEntries(3, 60)); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := src.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	want := fingerprint(t, src)

	// The target is ahead of the snapshot and has a live subscriber.
	dst, dstPath := openStore(t, boltstore.WithReplicated())
	if _, err := dst.Apply(randomEntries(4, 200)); err != nil {
		t.Fatal(err)
	}
	if dst.Replica().Head() <= src.Replica().Head() {
		t.Fatalf("test setup: target head %d is not ahead of %d", dst.Replica().Head(), src.Replica().Head())
	}
	sub, err := dst.StreamAll(context.Background(), func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	var readers sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := dst.Query(context.Background(), typeQ("A")); err != nil {
					t.Errorf("query during restore: %v", err)
					return
				}
			}
		}()
	}
	err = dst.Restore(bytes.NewReader(snap.Bytes()))
	close(stop)
	readers.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprint(t, dst); got != want {
		t.Fatalf("restored state differs:\n%s\nwant\n%s", got, want)
	}
	if h := dst.Replica().Hub().Head(); h != src.Replica().Head() {
		t.Errorf("hub head %d after restore, want the restored head %d", h, src.Replica().Head())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if h, err := dst.Replica().Hub().WaitAtLeast(ctx, src.Replica().Head()); err != nil || h != src.Replica().Head() {
		t.Errorf("hub wait after restore: %d %v", h, err)
	}

	// The restored state is what the file holds after a restart, too.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopen(t, dstPath, boltstore.WithReplicated())
	if got := fingerprint(t, again); got != want {
		t.Fatalf("state after restore and reopen differs:\n%s\nwant\n%s", got, want)
	}
}

func TestRestoreRefusesGarbage(t *testing.T) {
	s, _ := openStore(t)
	mustAppend(t, s, ev("A", `{}`))
	if err := s.Restore(bytes.NewReader([]byte("not a bbolt file at all, clearly"))); err == nil {
		t.Fatal("restore of garbage succeeded")
	}
	if res := mustQuery(t, s, contract.EventQuery{}); len(res.Events) != 1 {
		t.Fatalf("the store lost its state after a refused restore: %d events", len(res.Events))
	}
}

// TestSnapshotWhileApplying: a snapshot taken during writes is one
// consistent commit: whole batches, gapless, the applied index with them.
func TestSnapshotWhileApplying(t *testing.T) {
	s, _ := openStore(t, boltstore.WithNoSync(true))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := s.Append(ctx, []contract.NewEvent{ev("A", `{"x":1}`), ev("A", `{"x":2}`)}); err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 5 {
		var snap bytes.Buffer
		if err := s.Snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		r, _ := openStore(t, boltstore.WithNoSync(true))
		if err := r.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		res := mustQuery(t, r, contract.EventQuery{})
		if len(res.Events)%2 != 0 || uint64(len(res.Events)) != r.Replica().Head() {
			t.Fatalf("snapshot %d: %d events, head %d", i, len(res.Events), r.Replica().Head())
		}
		for j, e := range res.Events {
			if e.SequenceNumber != uint64(j+1) {
				t.Fatalf("snapshot %d: gap at %d", i, j+1)
			}
		}
	}
	cancel()
	wg.Wait()
}
