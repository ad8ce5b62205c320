package contract_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

func TestFailurePolicyBackoff(t *testing.T) {
	p := contract.FailurePolicy{MaxDeliveries: 10}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := (contract.FailurePolicy{MaxDeliveries: 3, InitialBackoff: 10 * time.Second}).Backoff(1); got != 10*time.Second {
		t.Errorf("an initial backoff above the default maximum: %v, want 10s (the maximum follows it)", got)
	}
}

func TestParseFailurePolicy(t *testing.T) {
	cases := []struct {
		in   string
		want contract.FailurePolicy
		ok   bool
	}{
		{"stop", contract.FailurePolicy{}, true},
		{"", contract.FailurePolicy{}, true},
		{"park:5", contract.FailurePolicy{MaxDeliveries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}, true},
		{"park:3:20ms:1s", contract.FailurePolicy{MaxDeliveries: 3, InitialBackoff: 20 * time.Millisecond, MaxBackoff: time.Second}, true},
		{"park:0", contract.FailurePolicy{}, false},
		{"park:1001", contract.FailurePolicy{}, false},
		{"park:3:2s:1s", contract.FailurePolicy{}, false},
		{"park:x", contract.FailurePolicy{}, false},
		{"retry", contract.FailurePolicy{}, false},
	}
	for _, c := range cases {
		got, err := contract.ParseFailurePolicy(c.in)
		if c.ok != (err == nil) || (c.ok && got != c.want) {
			t.Errorf("ParseFailurePolicy(%q) = %+v, %v; want %+v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("ParseFailurePolicy(%q): %v, want ErrInvalidQuery", c.in, err)
		}
		if c.ok {
			if back, err := contract.ParseFailurePolicy(shortForm(got)); err != nil || back != got {
				t.Errorf("round trip of %+v: %+v, %v", got, back, err)
			}
		}
	}
}

func shortForm(p contract.FailurePolicy) string {
	if !p.Parks() {
		return "stop"
	}
	return "park:" + strconv.Itoa(p.MaxDeliveries) + ":" + p.InitialBackoff.String() + ":" + p.MaxBackoff.String()
}

func TestDeliveryInfo(t *testing.T) {
	if _, ok := contract.DeliveryInfo(context.Background()); ok {
		t.Error("DeliveryInfo outside a handler reported a delivery")
	}
	d := contract.Delivery{Attempt: 3, Redelivery: true}
	if got, ok := contract.DeliveryInfo(contract.WithDelivery(context.Background(), d)); !ok || got != d {
		t.Errorf("DeliveryInfo = %+v, %v; want %+v", got, ok, d)
	}
}
