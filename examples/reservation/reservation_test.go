package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/memstore"
)

// stores returns a fresh store of every embedded kind.
func stores(t *testing.T) map[string]contract.EventStore {
	t.Helper()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]contract.EventStore{"memstore": memstore.New(), "boltstore": bolt}
	t.Cleanup(func() {
		for name, s := range all {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", name, err)
			}
		}
	})
	return all
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReserveNeverDoubleBooks races many users for a few seats and checks
// the log itself: exactly one seat-reserved fact per seat, by the one user
// whose Reserve succeeded.
func TestReserveNeverDoubleBooks(t *testing.T) {
	const seats, usersPerSeat = 8, 12
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			type outcome struct {
				seat, user string
				err        error
			}
			out := make(chan outcome, seats*usersPerSeat)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for s := range seats {
				for u := range usersPerSeat {
					seat, user := fmt.Sprintf("%s-%d", name, s), fmt.Sprintf("user-%d", u)
					wg.Go(func() {
						<-start // release them all at once
						out <- outcome{seat, user, Reserve(ctx, store, seat, user)}
					})
				}
			}
			close(start)
			wg.Wait()
			close(out)

			winners := map[string]string{}
			for o := range out {
				switch {
				case o.err == nil:
					if prev, ok := winners[o.seat]; ok {
						t.Fatalf("seat %s reserved twice: by %s and %s", o.seat, prev, o.user)
					}
					winners[o.seat] = o.user
				case errors.Is(o.err, ErrSeatTaken):
				default:
					t.Fatalf("Reserve(%s, %s): %v", o.seat, o.user, o.err)
				}
			}
			if len(winners) != seats {
				t.Fatalf("%d seats have a winner, want %d: %v", len(winners), seats, winners)
			}

			// The log is the truth: one reservation fact per seat.
			for seat, winner := range winners {
				res, err := store.Query(ctx, SeatContext(seat))
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Events) != 1 || res.Events[0].Type != TypeSeatReserved {
					t.Fatalf("seat %s has %d facts, want exactly one %s: %+v", seat, len(res.Events), TypeSeatReserved, res.Events)
				}
				var p seatEvent
				if err := json.Unmarshal(res.Events[0].Payload, &p); err != nil {
					t.Fatal(err)
				}
				if p.User != winner {
					t.Fatalf("seat %s: the log says %s, Reserve said %s", seat, p.User, winner)
				}
			}
		})
	}
}

// TestCancelAndReserveAgain checks the lifecycle and that a conflict on
// one seat never involves another.
func TestCancelAndReserveAgain(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(Reserve(ctx, store, "1A", "ann"))
			must(Reserve(ctx, store, "1A", "ann")) // already hers: no new fact
			must(Reserve(ctx, store, "1B", "bob")) // another seat: no conflict
			if err := Reserve(ctx, store, "1A", "bob"); !errors.Is(err, ErrSeatTaken) {
				t.Fatalf("bob reserving ann's seat: %v, want ErrSeatTaken", err)
			}
			if err := Cancel(ctx, store, "1A", "bob"); !errors.Is(err, ErrNotHolder) {
				t.Fatalf("bob cancelling ann's seat: %v, want ErrNotHolder", err)
			}
			must(Cancel(ctx, store, "1A", "ann"))
			must(Reserve(ctx, store, "1A", "bob"))

			holder, version, err := Holder(ctx, store, "1A")
			must(err)
			if holder != "bob" {
				t.Fatalf("holder of 1A = %q, want bob", holder)
			}
			res, err := store.Query(ctx, SeatContext("1A"))
			must(err)
			if len(res.Events) != 3 || version != res.Events[2].SequenceNumber {
				t.Fatalf("1A has %d facts at version %d, want 3 (reserved, released, reserved): %+v", len(res.Events), version, res.Events)
			}
		})
	}
}

// TestContendedCancelAndReserve interleaves cancels and reserves on one
// seat: whatever the order, the facts must alternate reserved/released and
// every release must be by the holder.
func TestContendedCancelAndReserve(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			var wg sync.WaitGroup
			for u := range 6 {
				user := fmt.Sprintf("user-%d", u)
				wg.Go(func() {
					for range 5 {
						switch err := Reserve(ctx, store, "9Z", user); {
						case err == nil:
							if err := Cancel(ctx, store, "9Z", user); err != nil {
								t.Errorf("%s cancelling its own seat: %v", user, err)
							}
						case errors.Is(err, ErrSeatTaken), errors.Is(err, ErrBusy):
						default:
							t.Errorf("%s: %v", user, err)
						}
					}
				})
			}
			wg.Wait()
			res, err := store.Query(ctx, SeatContext("9Z"))
			if err != nil {
				t.Fatal(err)
			}
			holder := ""
			for _, ev := range res.Events {
				var p seatEvent
				if err := json.Unmarshal(ev.Payload, &p); err != nil {
					t.Fatal(err)
				}
				switch {
				case ev.Type == TypeSeatReserved && holder == "":
					holder = p.User
				case ev.Type == TypeSeatReleased && holder == p.User:
					holder = ""
				default:
					t.Fatalf("fact %d (%s by %s) while the holder was %q: the log is not a valid history", ev.SequenceNumber, ev.Type, p.User, holder)
				}
			}
			if holder != "" {
				t.Fatalf("every user cancelled, yet %s holds the seat", holder)
			}
		})
	}
}

// TestIdempotencyKeyIsPerAttempt: a store remembers a key's outcome,
// conflicts included, so Reserve derives one key per attempt. With a
// caller key it still re-reads after a conflict instead of replaying it,
// and a retried Reserve with the same key appends nothing new.
func TestIdempotencyKeyIsPerAttempt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	store, err := boltstore.Open(path) // memstore ignores idempotency keys
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := testCtx(t)

	// Make the first attempt of a keyed Reserve conflict: its key's
	// conflict is remembered by the store.
	keyed := contract.WithIdempotencyKey(ctx, "request-42")
	first := contract.WithIdempotencyKey(ctx, "request-42/attempt-1")
	if _, err := store.AppendIf(first, []contract.NewEvent{{Type: TypeSeatReserved, Payload: json.RawMessage(`{"seat":"5E","user":"zed"}`)}},
		SeatContext("5E"), 7); !errors.As(err, new(*contract.ConflictError)) {
		t.Fatalf("setup: %v, want a conflict", err)
	}
	if err := Reserve(keyed, store, "5E", "ann"); err != nil {
		t.Fatalf("Reserve after a remembered conflict: %v", err)
	}
	if err := Reserve(keyed, store, "5E", "ann"); err != nil {
		t.Fatalf("retried Reserve: %v", err)
	}
	res, err := store.Query(ctx, SeatContext("5E"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 {
		t.Fatalf("5E has %d facts, want 1: %+v", len(res.Events), res.Events)
	}
}
