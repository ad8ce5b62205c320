package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// The parked-event subcommands against a memstore served over gRPC: a
// batch parked after one failed delivery is listed, replayed to the
// subscriber once its handler is fixed, and another one dropped.
func TestAdminStreamsParked(t *testing.T) {
	store, addr := serveStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, typ := range []string{"Bad", "Good", "Bad"} {
		if _, err := store.Append(ctx, []contract.NewEvent{{Type: typ, Payload: json.RawMessage(`{"x":1}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	var fixed atomic.Bool
	redelivered := make(chan uint64, 8)
	sub, err := store.StreamAllDurable(ctx, "outbox", func(hctx context.Context, b []contract.EventRecord) error {
		if d, _ := contract.DeliveryInfo(hctx); d.Redelivery {
			redelivered <- b[0].SequenceNumber
		}
		if b[0].Type == "Bad" && !fixed.Load() {
			return errors.New("smtp: 550 mailbox unavailable\nretry later")
		}
		return nil
	}, contract.RetryThenPark(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := runStreams(ctx, &out, append(args, "--addr", addr))
		return out.String(), err
	}
	out, err := run("parked", "outbox")
	if err != nil {
		t.Fatalf("streams parked: %v", err)
	}
	for _, want := range []string{"SEQ", "ATTEMPTS", "Bad", "smtp: 550 mailbox unavailable retry later"} {
		if !strings.Contains(out, want) {
			t.Errorf("streams parked lacks %q:\n%s", want, out)
		}
	}
	out, err = run("parked", "outbox", "--json", "--limit", "1")
	if err != nil {
		t.Fatalf("streams parked --json: %v", err)
	}
	var page struct {
		Parked []parkedJSON `json:"parked"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Parked) != 1 || page.Parked[0].SequenceNumber != 1 || page.Parked[0].Attempts != 1 {
		t.Fatalf("streams parked --json --limit 1: %v %q", err, out)
	}
	out, err = run("show", "outbox")
	if err != nil || !strings.Contains(out, "retry 1 then park") || !strings.Contains(out, "2 events") {
		t.Errorf("streams show of a parking name: %v\n%s", err, out)
	}

	fixed.Store(true)
	out, err = run("replay-parked", "outbox", "--up-to", "1")
	if err != nil || !strings.Contains(out, "1 parked events") {
		t.Fatalf("streams replay-parked --up-to 1: %v\n%s", err, out)
	}
	select {
	case seq := <-redelivered:
		if seq != 1 {
			t.Errorf("redelivered event %d, want 1", seq)
		}
	case <-ctx.Done():
		t.Fatal("the parked event was not redelivered")
	}
	out, err = run("drop-parked", "outbox")
	if err != nil || !strings.Contains(out, "dropped") {
		t.Fatalf("streams drop-parked: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := store.GetDurable(ctx, "outbox")
		if err != nil {
			t.Fatal(err)
		}
		if info.Parked == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked events left after replay and drop: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := run("parked", "nope"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("parked of an unknown name: %v, want not found", err)
	}
	if _, err := run("parked"); err == nil {
		t.Error("parked without a name was accepted")
	}
}
