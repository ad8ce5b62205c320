package memstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/memstore"
)

// A stream that loses its name while it retries a batch (an operator's
// forced reset) cannot park it: the park is refused like an advance, the
// stream ends with ErrDurableLeaseLost, and nothing is parked.
func TestParkRefusedAfterTheLeaseWasLost(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := make(chan int, 8)
	sub, err := s.StreamAllDurable(ctx, "d", func(hctx context.Context, _ []contract.EventRecord) error {
		d, _ := contract.DeliveryInfo(hctx)
		calls <- d.Attempt
		return errors.New("refused")
	}, contract.RetryThenPark(2, 200*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := s.Append(ctx, []contract.NewEvent{{Type: "a", Payload: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if a := <-calls; a != 1 {
		t.Fatalf("first delivery attempt %d, want 1", a)
	}
	if _, err := s.ResetDurable(ctx, "d", contract.StartPosition{}, true); err != nil {
		t.Fatalf("forced reset: %v", err)
	}
	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("the stream did not end after its park was refused")
	}
	if err := sub.Err(); !errors.Is(err, contract.ErrDurableLeaseLost) {
		t.Fatalf("Err = %v, want ErrDurableLeaseLost", err)
	}
	if a := <-calls; a != 2 {
		t.Fatalf("second delivery attempt %d, want 2", a)
	}
	info, err := s.GetDurable(ctx, "d")
	if err != nil || info.Parked != 0 || info.Cursor != 0 {
		t.Fatalf("GetDurable: %+v, %v; want nothing parked, cursor 0", info, err)
	}
}
