package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/memstore"
)

// Three members project balances; one leaves halfway; the balances are
// exact on every embedded store, each posting applied once.
func TestLedgerGroup(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]contract.EventStore{"memstore": memstore.New(), "boltstore": bolt} {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b := NewBalances()
			var subs []contract.Subscription
			for range 3 {
				sub, err := RunMember(ctx, s, b)
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, sub)
				defer sub.Unsubscribe()
			}
			want := map[string]int64{}
			for i := range 300 {
				acc := fmt.Sprintf("acc-%d", i%7)
				if err := Post(ctx, s, acc, int64(i)); err != nil {
					t.Fatal(err)
				}
				want[acc] += int64(i)
				if i == 150 {
					subs[0].Unsubscribe()
				}
			}
			for fmt.Sprint(b.Snapshot()) != fmt.Sprint(want) {
				select {
				case <-ctx.Done():
					t.Fatalf("balances %v, want %v", b.Snapshot(), want)
				case <-time.After(20 * time.Millisecond):
				}
			}
			if b.Redelivered != 0 {
				t.Errorf("%d postings redelivered without a fault", b.Redelivered)
			}
		})
	}
}
