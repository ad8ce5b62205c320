package streams

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Shutdown ends every subscription together and waits for each: a handler
// call in flight returns (its nil counts), the cursor is stored and the
// name released before Shutdown returns; new subscriptions are refused.
func TestShutdownStoresCursorsAndWaits(t *testing.T) {
	src := &logSource{}
	hub := NewHub(0)
	d := &slowDurables{gate: make(chan struct{})}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // every cursor write goes through
		for {
			select {
			case d.gate <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	e := New(Config{Source: src, Hub: hub, Durables: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), IdleRecord: time.Hour})
	defer e.Close()
	inHandler := make(chan struct{})
	sub, err := e.Durable(t.Context(), "d", contract.EventQuery{}, func(ctx context.Context, b []contract.EventRecord) error {
		if b[0].SequenceNumber == 3 {
			close(inHandler)
			<-ctx.Done() // still working when the shutdown comes
		}
		return nil
	}, contract.DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.Live(t.Context(), contract.EventQuery{}, false, func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		src.append(hub)
	}
	<-inHandler
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !e.Shutdown(ctx) {
		t.Fatal("Shutdown gave up")
	}
	for _, s := range []contract.Subscription{sub, live} {
		select {
		case <-s.Done():
		default:
			t.Fatal("a subscription has not ended when Shutdown returned")
		}
		if err := s.Err(); err != contract.ErrClosed {
			t.Fatalf("Err = %v, want contract.ErrClosed", err)
		}
	}
	d.mu.Lock()
	cursor, holder := d.cursor, d.holder
	d.mu.Unlock()
	if cursor != 3 || holder != "" {
		t.Fatalf("after Shutdown: cursor %d, holder %q; want 3 (the batch in the handler counted) and the name released", cursor, holder)
	}
	if _, err := e.Live(t.Context(), contract.EventQuery{}, false, func(context.Context, []contract.EventRecord) error { return nil }); err != contract.ErrClosed {
		t.Fatalf("a new subscription after Shutdown: %v, want contract.ErrClosed", err)
	}
}

// Shutdown waits for a handler that does not return only until its ctx
// ends, and says so.
func TestShutdownIsBounded(t *testing.T) {
	src := &logSource{}
	hub := NewHub(0)
	e := New(Config{Source: src, Hub: hub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer e.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	if _, err := e.Live(t.Context(), contract.EventQuery{}, false, func(context.Context, []contract.EventRecord) error {
		close(entered)
		<-release // ignores its ctx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	src.append(hub)
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if e.Shutdown(ctx) {
		t.Fatal("Shutdown reported every subscription finished while a handler still runs")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Shutdown waited %v past its ctx", waited)
	}
}
