package contract

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FailurePolicy is what a durable stream does when its handler fails (returns
// an error or panics) on a batch. It is chosen when a name is created and
// recorded with it; a name that exists keeps its policy whatever is asked.
//
// The zero value is "stop": the stream ends with ErrHandlerFailed and the
// cursor never passes the batch, so the next subscription gets it again.
// With MaxDeliveries > 0 ("retry N then park") the batch is delivered again
// after a backoff, up to MaxDeliveries deliveries in total; if every one
// fails, the batch's events are parked (recorded in the name's parked list,
// with the attempt count and the last error) and the cursor moves past them
// in the same change, so the stream goes on with the next batch.
type FailurePolicy struct {
	// MaxDeliveries is how many deliveries a batch gets before it is
	// parked; 0 means stop (never park).
	MaxDeliveries int
	// InitialBackoff is the pause after the first failed delivery (default
	// DefaultInitialBackoff); each further failure doubles it, up to
	// MaxBackoff (default DefaultMaxBackoff).
	InitialBackoff, MaxBackoff time.Duration
}

// Defaults and bounds of a FailurePolicy.
const (
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	// MaxFailureDeliveries bounds FailurePolicy.MaxDeliveries.
	MaxFailureDeliveries = 1000
	// MaxFailureBackoff bounds the backoffs of a FailurePolicy.
	MaxFailureBackoff = time.Hour
)

// Stop is the default failure policy: a handler failure ends the stream.
func Stop() DurableOption {
	return func(o *DurableOptions) { o.Failure = FailurePolicy{} }
}

// RetryThenPark sets the "retry N then park" failure policy of a new name:
// a failed batch is delivered up to maxDeliveries times in total, pausing
// initialBackoff after the first failure and doubling the pause up to
// maxBackoff (0 for either: the default, 100 ms and 5 s), then parked.
func RetryThenPark(maxDeliveries int, initialBackoff, maxBackoff time.Duration) DurableOption {
	return func(o *DurableOptions) {
		o.Failure = FailurePolicy{MaxDeliveries: maxDeliveries, InitialBackoff: initialBackoff, MaxBackoff: maxBackoff}
	}
}

// WithFailurePolicy sets the failure policy of a new name from a value.
func WithFailurePolicy(p FailurePolicy) DurableOption {
	return func(o *DurableOptions) { o.Failure = p }
}

// Parks reports whether the policy is "retry N then park".
func (p FailurePolicy) Parks() bool { return p.MaxDeliveries > 0 }

// Normalized fills in the default backoffs of a parking policy and clears
// them for stop, so equal policies compare equal.
func (p FailurePolicy) Normalized() FailurePolicy {
	if !p.Parks() {
		return FailurePolicy{}
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(DefaultMaxBackoff, p.InitialBackoff)
	}
	return p
}

// Validate rejects a policy out of bounds, with ErrInvalidQuery.
func (p FailurePolicy) Validate() error {
	switch {
	case p.MaxDeliveries < 0 || p.MaxDeliveries > MaxFailureDeliveries:
		return fmt.Errorf("%w: failure policy: max deliveries %d, want 0 (stop) to %d", ErrInvalidQuery, p.MaxDeliveries, MaxFailureDeliveries)
	case p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.InitialBackoff > MaxFailureBackoff || p.MaxBackoff > MaxFailureBackoff:
		return fmt.Errorf("%w: failure policy: backoffs must be between 0 and %s", ErrInvalidQuery, MaxFailureBackoff)
	case p.InitialBackoff > 0 && p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff:
		return fmt.Errorf("%w: failure policy: initial backoff %s is longer than the maximum %s", ErrInvalidQuery, p.InitialBackoff, p.MaxBackoff)
	}
	return nil
}

// Backoff is the pause after the failed delivery number attempt (1 for the
// first): InitialBackoff doubled for every earlier failure, at most
// MaxBackoff.
func (p FailurePolicy) Backoff(attempt int) time.Duration {
	p = p.Normalized()
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// String is "stop" or "retry N then park (backoff A..B)"; ParseFailurePolicy
// reads the short forms "stop" and "park:N[:A[:B]]".
func (p FailurePolicy) String() string {
	if !p.Parks() {
		return "stop"
	}
	p = p.Normalized()
	return fmt.Sprintf("retry %d then park (backoff %s..%s)", p.MaxDeliveries, p.InitialBackoff, p.MaxBackoff)
}

// ParseFailurePolicy reads a failure policy as people write it on a command
// line: "stop", or "park:N" (retry N then park, default backoffs), or
// "park:N:INITIAL:MAX" with Go durations ("park:5:200ms:10s").
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	if strings.EqualFold(s, "stop") || s == "" {
		return FailurePolicy{}, nil
	}
	parts := strings.Split(s, ":")
	bad := func(why string) (FailurePolicy, error) {
		return FailurePolicy{}, fmt.Errorf("%w: failure policy %q: %s; want stop, park:N or park:N:INITIAL:MAX (e.g. park:5:100ms:5s)", ErrInvalidQuery, s, why)
	}
	if !strings.EqualFold(parts[0], "park") || len(parts) < 2 || len(parts) > 4 {
		return bad("unknown form")
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 {
		return bad("N must be a number of deliveries, at least 1")
	}
	p := FailurePolicy{MaxDeliveries: n}
	if len(parts) > 2 {
		if p.InitialBackoff, err = time.ParseDuration(parts[2]); err != nil {
			return bad("initial backoff: " + err.Error())
		}
	}
	if len(parts) > 3 {
		if p.MaxBackoff, err = time.ParseDuration(parts[3]); err != nil {
			return bad("max backoff: " + err.Error())
		}
	}
	if err := p.Validate(); err != nil {
		return FailurePolicy{}, err
	}
	return p.Normalized(), nil
}

// Delivery describes one delivery of a batch to a stream handler, so that a
// handler can be idempotent: read it with DeliveryInfo(ctx).
type Delivery struct {
	// Attempt is 1 for a batch's first delivery, 2 for the first retry
	// after a handler failure, and so on (a parked batch's redelivery
	// counts again from 1).
	Attempt int
	// Redelivery is set when the batch holds parked events delivered again
	// on an operator's request (RedeliverParked).
	Redelivery bool
}

type deliveryKey struct{}

// WithDelivery returns ctx carrying d: stores and clients set it on the
// ctx they give a stream handler.
func WithDelivery(ctx context.Context, d Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// DeliveryInfo returns the Delivery of the batch a stream handler was
// called with, from the handler's ctx; ok is false outside a handler.
func DeliveryInfo(ctx context.Context) (d Delivery, ok bool) {
	d, ok = ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// ParkedEvent is one event of a durable name's parked list: its handler
// failed on the batch holding it on every delivery the policy allowed.
type ParkedEvent struct {
	Event     EventRecord
	Attempts  int       // deliveries that failed, over every round
	LastError string    // the handler's last error (truncated to MaxParkedErrorBytes)
	ParkedAt  time.Time // when it was (last) parked
	// Redeliver is set while a redelivery was asked for and the name's
	// subscriber has not handled it yet.
	Redeliver bool
}

// MaxParkedErrorBytes bounds the error text kept with a parked event.
const MaxParkedErrorBytes = 1024

// Page bounds of ListParked.
const (
	DefaultParkedPage = 100
	MaxParkedPage     = 1000
)

// ParkedAdmin manages the parked events of durable names whose failure
// policy is "retry N then park". In a cluster, every change goes through
// the Raft log.
type ParkedAdmin interface {
	// ListParked returns up to limit (0: DefaultParkedPage, at most
	// MaxParkedPage) parked events of name with sequence numbers after
	// after, in sequence order. An unknown name is ErrDurableNotFound.
	ListParked(ctx context.Context, name string, after uint64, limit int) ([]ParkedEvent, error)
	// RedeliverParked asks for name's parked events up to sequence number
	// upTo (0: all) to be delivered again to the name's subscriber (now,
	// or the next one), flagged as a redelivery; once handled they leave
	// the parked list, and if the handler fails on them again they are
	// parked again. It returns how many events were asked for.
	RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error)
	// DropParked forgets name's parked events up to sequence number upTo
	// (0: all) and returns how many were dropped.
	DropParked(ctx context.Context, name string, upTo uint64) (int, error)
}
