package sendq

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestDrainSendsInOrderUntilClosed(t *testing.T) {
	q := New[int]()
	var got []int
	done := make(chan error, 1)
	go func() { done <- q.Drain(context.Background(), func(v int) error { got = append(got, v); return nil }) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 1000 {
			q.Push(i)
		}
	}()
	wg.Wait()
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Fatalf("sent %d items, want 1000", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d is %d: out of order", i, v)
		}
	}
}

func TestDrainStopsOnSendError(t *testing.T) {
	q := New[int]()
	q.Push(1)
	q.Push(2)
	boom := errors.New("boom")
	sent := 0
	err := q.Drain(context.Background(), func(int) error { sent++; return boom })
	if !errors.Is(err, boom) || sent != 1 {
		t.Fatalf("Drain: %v after %d sends, want boom after 1", err, sent)
	}
}

func TestDrainEndsWithContext(t *testing.T) {
	q := New[int]()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Drain(ctx, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestDrainBatchesHandsOverWhatIsQueued(t *testing.T) {
	q := New[int]()
	for i := range 5 {
		q.Push(i)
	}
	q.Close()
	var batches [][]int
	if err := q.DrainBatches(context.Background(), func(items []int) error {
		batches = append(batches, append([]int(nil), items...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(batches) != 1 || len(batches[0]) != 5 || batches[0][0] != 0 || batches[0][4] != 4 {
		t.Fatalf("batches %v, want one batch [0 1 2 3 4]", batches)
	}
}
