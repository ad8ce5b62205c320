package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// TestParkedEventsAreManaged: a batch a retry-then-park subscriber failed
// on is listed with its event, attempts and error; redelivered on request
// (with the redelivery flag) it leaves the list; another is dropped.
func TestParkedEventsAreManaged(t *testing.T) {
	n := startNode(t, nil, nil)
	for _, typ := range []string{"bad", "good", "bad"} {
		mustOK(t, "POST", n.url+"/v1/append", "", `{"events":[{"type":"`+typ+`","payload":{"k":1}}]}`)
	}
	var fixed atomic.Bool
	redelivered := make(chan uint64, 4)
	sub, err := n.store.StreamAllDurable(t.Context(), "outbox", func(ctx context.Context, b []contract.EventRecord) error {
		if d, _ := contract.DeliveryInfo(ctx); d.Redelivery {
			redelivered <- b[0].SequenceNumber
		}
		if b[0].Type == "bad" && !fixed.Load() {
			return errors.New("downstream refused")
		}
		return nil
	}, contract.RetryThenPark(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Unsubscribe)

	type parked struct {
		Event     record
		Attempts  uint32
		LastError string `json:"last_error"`
		ParkedAt  string `json:"parked_at"`
		Redeliver bool
	}
	var list struct{ Events []parked }
	deadline := time.Now().Add(10 * time.Second)
	for {
		list = decode[struct{ Events []parked }](t, mustOK(t, "GET", n.url+"/v1/durable/outbox/parked", "", ""))
		if len(list.Events) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked list %+v, want events 1 and 3", list.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := list.Events[0]
	if p.Event.SequenceNumber != 1 || p.Event.Type != "bad" || string(p.Event.Payload) != `{"k":1}` || p.Attempts != 2 ||
		p.LastError != "downstream refused" || p.ParkedAt == "" || p.Redeliver {
		t.Errorf("parked event: %+v", p)
	}
	page := decode[struct{ Events []parked }](t, mustOK(t, "GET", n.url+"/v1/durable/outbox/parked?after=1&limit=1", "", ""))
	if len(page.Events) != 1 || page.Events[0].Event.SequenceNumber != 3 {
		t.Errorf("page after 1, limit 1: %+v, want event 3", page.Events)
	}
	var info struct {
		Stream struct {
			Parked  uint64
			Failure struct {
				MaxDeliveries uint32 `json:"max_deliveries"`
			}
		}
	}
	if err := json.Unmarshal(mustOK(t, "GET", n.url+"/v1/durable/outbox", "", ""), &info); err != nil {
		t.Fatal(err)
	}
	if info.Stream.Parked != 2 || info.Stream.Failure.MaxDeliveries != 2 {
		t.Errorf("GET /v1/durable/outbox: %+v, want 2 parked, retry 2 then park", info.Stream)
	}

	fixed.Store(true)
	got := decode[struct{ Count uint64 }](t, mustOK(t, "POST", n.url+"/v1/durable/outbox/parked/redeliver", "", `{"up_to":1}`))
	if got.Count != 1 {
		t.Errorf("redeliver up to 1: count %d, want 1", got.Count)
	}
	select {
	case seq := <-redelivered:
		if seq != 1 {
			t.Errorf("redelivered %d, want 1", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event 1 was not redelivered")
	}
	dropped := decode[struct{ Count uint64 }](t, mustOK(t, "DELETE", n.url+"/v1/durable/outbox/parked?up_to=3", "", ""))
	if dropped.Count == 0 {
		t.Errorf("drop up to 3 dropped nothing")
	}
	for {
		list = decode[struct{ Events []parked }](t, mustOK(t, "GET", n.url+"/v1/durable/outbox/parked", "", ""))
		if len(list.Events) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked list after redelivery and drop: %+v, want empty", list.Events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, b := call(t, "GET", n.url+"/v1/durable/outbox/parked?limit=-1", "", ""); code != http.StatusBadRequest {
		t.Errorf("limit=-1: %d %s, want 400", code, b)
	}
	if code, b := call(t, "GET", n.url+"/v1/durable/nope/parked", "", ""); code != http.StatusNotFound || !strings.Contains(string(b), "DURABLE_NOT_FOUND") {
		t.Errorf("parked of an unknown name: %d %s, want 404", code, b)
	}
}
