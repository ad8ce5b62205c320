package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/factstr/factstr-go/contract"
)

// Posted is the one event type of the ledger: an amount (negative for a
// withdrawal) posted to an account.
type Posted struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Post appends one posting.
func Post(ctx context.Context, s contract.EventStore, account string, amount int64) error {
	p, err := json.Marshal(Posted{Account: account, Amount: amount})
	if err != nil {
		return err
	}
	_, err = s.Append(ctx, []contract.NewEvent{{Type: "Posted", Payload: p}})
	return err
}

// Balances is the read model the projection keeps: one balance per
// account. In a real service it is a table next to the projection's own
// record of the last sequence number applied per account, written in one
// transaction with the balance.
type Balances struct {
	mu      sync.Mutex
	balance map[string]int64
	applied map[string]uint64 // account → last sequence number applied
	// Redelivered counts events that came again (after a member's node
	// failed before its cursor was stored) and were skipped.
	Redelivered int
}

// NewBalances returns an empty read model.
func NewBalances() *Balances {
	return &Balances{balance: map[string]int64{}, applied: map[string]uint64{}}
}

// apply applies one batch. Delivery is at least once; what was applied is
// skipped by sequence number, so a redelivered batch changes nothing. The
// group guarantees that one account's events come in order and never to
// two members at once, so the check per account is enough.
func (b *Balances) apply(batch []contract.EventRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range batch {
		var p Posted
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			return fmt.Errorf("event %d: %w", r.SequenceNumber, err)
		}
		if r.SequenceNumber <= b.applied[p.Account] {
			b.Redelivered++
			continue
		}
		b.balance[p.Account] += p.Amount
		b.applied[p.Account] = r.SequenceNumber
	}
	return nil
}

// Balance returns an account's balance.
func (b *Balances) Balance(account string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.balance[account]
}

// Snapshot returns every balance.
func (b *Balances) Snapshot() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int64, len(b.balance))
	for k, v := range b.balance {
		out[k] = v
	}
	return out
}

// Group is the consumer group of the projection: partitioned by account,
// so each account's postings are applied in order by one member at a time.
const Group = "ledger-balances"

// RunMember starts one member of the projection's consumer group. Run one
// per replica of the service (or several in one process); the members
// share the group's 8 partitions, and when one stops, the others take
// its partitions over from their stored cursors.
func RunMember(ctx context.Context, s contract.EventStore, b *Balances) (contract.Subscription, error) {
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"Posted"}}}}
	return s.StreamToDurable(ctx, Group, q,
		func(_ context.Context, batch []contract.EventRecord) error { return b.apply(batch) },
		contract.Group(contract.KeyField("account"), 8))
}
