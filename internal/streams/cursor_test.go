package streams

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// logSource is a Source over an in-memory log of one-event batches.
type logSource struct {
	mu  sync.Mutex
	log []contract.EventRecord
}

func (l *logSource) append(h *Hub) {
	l.mu.Lock()
	seq := uint64(len(l.log)) + 1
	l.log = append(l.log, contract.EventRecord{SequenceNumber: seq, OccurredAt: time.Unix(1, 0), Type: "A", Payload: json.RawMessage(`{}`)})
	l.mu.Unlock()
	h.Publish(seq, nil)
}

func (l *logSource) ReadBatches(_ context.Context, after, upTo uint64, m *contract.Matcher, maxBatches int, _ int64) ([][]contract.EventRecord, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]contract.EventRecord
	for seq := after + 1; seq <= upTo && seq <= uint64(len(l.log)); seq++ {
		if ev := l.log[seq-1]; m.Match(ev.Type, ev.Payload) {
			out = append(out, []contract.EventRecord{ev})
		}
		if len(out) == maxBatches {
			return out, seq, nil
		}
	}
	return out, upTo, nil
}

// slowDurables holds every Advance until the test lets it go, and counts
// them: a store whose writes take a long round trip.
type slowDurables struct {
	mu       sync.Mutex
	cursor   uint64
	holder   string
	advances []uint64
	gate     chan struct{} // receives one value per Advance allowed through
}

func (d *slowDurables) Acquire(_ context.Context, _ string, _ contract.EventQuery, holder string, _ contract.DurableOptions) (AcquireResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holder = holder
	return AcquireResult{Cursor: d.cursor}, nil
}

func (d *slowDurables) Advance(ctx context.Context, _, holder string, cursor uint64) error {
	select {
	case <-d.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advances = append(d.advances, cursor)
	d.cursor = max(d.cursor, cursor)
	return nil
}

func (d *slowDurables) Park(context.Context, string, string, Parking) error {
	return errors.New("slowDurables parks nothing")
}

func (d *slowDurables) DueParked(context.Context, string, int) ([]contract.ParkedEvent, error) {
	return nil, nil
}

func (d *slowDurables) Unpark(context.Context, string, string, []uint64) error { return nil }

func (d *slowDurables) Release(context.Context, string, string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holder = ""
	return nil
}

func (d *slowDurables) state() (uint64, []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cursor, append([]uint64(nil), d.advances...)
}

// Delivery never waits for the cursor to be stored, and the batches
// acknowledged while one advance is in flight are stored by the next one:
// 100 batches while the store holds the first write cost 2 writes, and the
// cursor is complete when Unsubscribe returns.
func TestCursorAdvancesAreCoalesced(t *testing.T) {
	src := &logSource{}
	hub := NewHub(0)
	d := &slowDurables{gate: make(chan struct{})}
	e := New(Config{Source: src, Hub: hub, Durables: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), IdleRecord: time.Hour})
	defer e.Close()

	delivered := make(chan uint64, 200)
	sub, err := e.Durable(t.Context(), "d", contract.EventQuery{}, func(_ context.Context, b []contract.EventRecord) error {
		delivered <- b[len(b)-1].SequenceNumber
		return nil
	}, contract.DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		src.append(hub)
	}
	// Every batch is delivered while the first advance is still held.
	for want := uint64(1); want <= 100; want++ {
		select {
		case got := <-delivered:
			if got != want {
				t.Fatalf("delivery %d was batch %d", want, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d was not delivered while the store held the first cursor write: delivery waits for the store", want)
		}
	}
	if _, adv := d.state(); len(adv) != 0 {
		t.Fatalf("advances %v completed while the store held them", adv)
	}
	// Let writes through: the first (in flight since batch 1 or so), then
	// one for everything acknowledged meanwhile.
	go func() {
		for {
			select {
			case d.gate <- struct{}{}:
			case <-sub.Done():
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cursor, _ := d.state(); cursor == 100 {
			break
		}
		if time.Now().After(deadline) {
			cursor, adv := d.state()
			t.Fatalf("the stored cursor is %d after the writes were let through (advances %v), want 100", cursor, adv)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, adv := d.state(); len(adv) > 2 {
		t.Errorf("100 batches acknowledged during one held write cost %d cursor writes %v, want at most 2", len(adv), adv)
	}
	sub.Unsubscribe()
	if cursor, _ := d.state(); cursor != 100 {
		t.Fatalf("cursor %d after Unsubscribe, want 100", cursor)
	}
}

// What was acknowledged is stored before the name is released, even when
// the writes were still held when the stream was told to stop.
func TestCursorStoredBeforeRelease(t *testing.T) {
	src := &logSource{}
	hub := NewHub(0)
	d := &slowDurables{gate: make(chan struct{})}
	e := New(Config{Source: src, Hub: hub, Durables: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), IdleRecord: time.Hour})
	defer e.Close()
	got := make(chan struct{}, 10)
	sub, err := e.Durable(t.Context(), "d", contract.EventQuery{}, func(context.Context, []contract.EventRecord) error {
		got <- struct{}{}
		return nil
	}, contract.DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		src.append(hub)
	}
	for range 5 {
		<-got
	}
	unsubscribed := make(chan struct{})
	go func() { sub.Unsubscribe(); close(unsubscribed) }()
	select {
	case <-unsubscribed:
		t.Fatal("Unsubscribe returned before the acknowledged cursor was stored")
	case <-time.After(100 * time.Millisecond):
	}
	close(d.gate) // every write goes through from now on
	select {
	case <-unsubscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("Unsubscribe did not return")
	}
	if cursor, _ := d.state(); cursor != 5 {
		t.Fatalf("cursor %d when Unsubscribe returned, want 5", cursor)
	}
	d.mu.Lock()
	holder := d.holder
	d.mu.Unlock()
	if holder != "" {
		t.Fatalf("the name is still held by %q after Unsubscribe", holder)
	}
}

// The cursor stores the highest position acknowledged, never moves back,
// and writes nothing for what a park stored or the store already has.
func TestDurableCursorFinish(t *testing.T) {
	cases := []struct {
		name       string
		start      uint64
		ops        func(c *durableCursor)
		wantStored uint64
		wantLast   uint64 // the last advance written; 0: none
	}{
		{"nothing acknowledged", 5, func(*durableCursor) {}, 5, 0},
		{"highest ack wins", 0, func(c *durableCursor) { c.ack(3); c.ack(7); c.ack(4) }, 7, 7},
		{"an ack behind the stored cursor", 5, func(c *durableCursor) { c.ack(2) }, 5, 0},
		{"a park stored it", 0, func(c *durableCursor) { c.storedAt(6); c.ack(6) }, 6, 0},
		{"an ack after a park", 0, func(c *durableCursor) { c.storedAt(6); c.ack(8) }, 8, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDurables{}
			c := startCursor(testLease(d, nil), tc.start, func(err error) { t.Errorf("the stream was ended: %v", err) }, discard)
			tc.ops(c)
			if got := c.finish(); got != tc.wantStored {
				t.Fatalf("finish stored %d, want %d", got, tc.wantStored)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			var last uint64
			for i, a := range d.advances {
				if i > 0 && a <= d.advances[i-1] {
					t.Fatalf("advances %v do not only move forward", d.advances)
				}
				last = a
			}
			if last != tc.wantLast {
				t.Fatalf("advances %v, want the last to be %d", d.advances, tc.wantLast)
			}
		})
	}
}

// A write that fails ends the stream with the store's error, once, and
// nothing after it is written.
func TestDurableCursorFailedWriteEndsStream(t *testing.T) {
	d := &fakeDurables{advanceErr: contract.ErrDurableLeaseLost}
	ended := make(chan error, 2)
	c := startCursor(testLease(d, nil), 3, func(err error) { ended <- err }, discard)
	c.ack(4)
	select {
	case err := <-ended:
		if !errors.Is(err, contract.ErrDurableLeaseLost) {
			t.Fatalf("the stream ended with %v, want ErrDurableLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed cursor write did not end the stream")
	}
	d.mu.Lock()
	d.advanceErr = nil // the store would take a write now: the cursor must not try
	d.mu.Unlock()
	c.ack(5)
	if got := c.finish(); got != 3 {
		t.Fatalf("finish after a failed write stored %d, want 3", got)
	}
	if len(ended) != 0 {
		t.Fatal("the stream was ended twice")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.advances) != 0 {
		t.Fatalf("advances %v after the write that failed", d.advances)
	}
}
