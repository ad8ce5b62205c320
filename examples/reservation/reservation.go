package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/factstr/factstr-go/contract"
)

// Event types this service writes.
const (
	TypeSeatReserved = "seat-reserved"
	TypeSeatReleased = "seat-released"
)

// Errors a caller branches on.
var (
	// ErrSeatTaken: another user holds the seat.
	ErrSeatTaken = errors.New("seat is already reserved")
	// ErrNotHolder: Cancel by a user who does not hold the seat.
	ErrNotHolder = errors.New("seat is not reserved by this user")
	// ErrBusy: the seat's context kept moving under us; try again later.
	ErrBusy = errors.New("seat is too contended right now")
)

// maxAttempts bounds the query-decide-append loop. Every conflict means that
// someone else appended a fact about this seat in between, so under normal
// contention two or three attempts are enough.
const maxAttempts = 16

// seatEvent is the payload of both event types.
type seatEvent struct {
	Seat string `json:"seat"`
	User string `json:"user"`
}

// SeatContext is the command's consistency boundary: every fact about one
// seat, and nothing else. Facts about other seats never conflict with it.
func SeatContext(seat string) contract.EventQuery {
	pred, _ := json.Marshal(map[string]string{"seat": seat}) // a map of strings always marshals
	return contract.EventQuery{Filters: []contract.EventFilter{{
		EventTypes:        []string{TypeSeatReserved, TypeSeatReleased},
		PayloadPredicates: []json.RawMessage{pred},
	}}}
}

// Holder returns who holds seat ("" when it is free) and the version of the
// seat's context that this answer is based on.
func Holder(ctx context.Context, store contract.EventStore, seat string) (holder string, version uint64, err error) {
	res, err := store.Query(ctx, SeatContext(seat))
	if err != nil {
		return "", 0, fmt.Errorf("read seat %s: %w", seat, err)
	}
	for _, ev := range res.Events {
		var p seatEvent
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return "", 0, fmt.Errorf("seat %s: event %d: %w", seat, ev.SequenceNumber, err)
		}
		switch ev.Type {
		case TypeSeatReserved:
			holder = p.User
		case TypeSeatReleased:
			if p.User == holder {
				holder = ""
			}
		}
	}
	return holder, res.CurrentContextVersion, nil
}

// Reserve gives seat to user, unless someone else holds it (ErrSeatTaken).
// Reserving a seat the user already holds succeeds without a new event, so
// a caller may retry Reserve freely.
//
// It is the conditional-append pattern: read the context and its version,
// decide, and append only if the version is unchanged. On a conflict it
// reads again and decides anew; it never appends on a stale decision.
func Reserve(ctx context.Context, store contract.EventStore, seat, user string) error {
	if seat == "" || user == "" {
		return errors.New("reserve: seat and user must not be empty")
	}
	return decideAndAppend(ctx, store, seat, func(holder string) (*seatEvent, string, error) {
		switch holder {
		case user:
			return nil, "", nil // already ours: nothing to append
		case "":
			return &seatEvent{Seat: seat, User: user}, TypeSeatReserved, nil
		default:
			return nil, "", fmt.Errorf("%w: %s holds %s", ErrSeatTaken, holder, seat)
		}
	})
}

// Cancel frees seat if user holds it (ErrNotHolder otherwise).
func Cancel(ctx context.Context, store contract.EventStore, seat, user string) error {
	if seat == "" || user == "" {
		return errors.New("cancel: seat and user must not be empty")
	}
	return decideAndAppend(ctx, store, seat, func(holder string) (*seatEvent, string, error) {
		if holder != user {
			return nil, "", fmt.Errorf("%w: seat %s, user %s", ErrNotHolder, seat, user)
		}
		return &seatEvent{Seat: seat, User: user}, TypeSeatReleased, nil
	})
}

// decideAndAppend runs the query-decide-AppendIf loop for one seat. decide
// returns the event to append (nil: nothing to do) or a domain error.
func decideAndAppend(ctx context.Context, store contract.EventStore, seat string,
	decide func(holder string) (*seatEvent, string, error)) error {
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		holder, version, err := Holder(ctx, store, seat)
		if err != nil {
			return err
		}
		ev, typ, err := decide(holder)
		if err != nil || ev == nil {
			return err
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = store.AppendIf(attemptCtx(ctx, attempt), []contract.NewEvent{{Type: typ, Payload: payload}},
			SeatContext(seat), version)
		var conflict *contract.ConflictError
		if errors.As(err, &conflict) {
			continue // someone wrote about this seat in between: read again
		}
		return err
	}
	return fmt.Errorf("%w: seat %s changed %d times while we decided", ErrBusy, seat, maxAttempts)
}

// attemptCtx gives each attempt its own idempotency key when the caller set
// one. A store remembers the outcome of a key, conflicts included: reusing
// one key for the attempt after a conflict would only replay that conflict.
// Deriving the keys keeps a retried Reserve (same caller key) idempotent:
// its first attempt replays the first attempt's outcome, and so on.
func attemptCtx(ctx context.Context, attempt int) context.Context {
	if k := contract.IdempotencyKey(ctx); k != "" {
		return contract.WithIdempotencyKey(ctx, fmt.Sprintf("%s/attempt-%d", k, attempt))
	}
	return ctx
}
