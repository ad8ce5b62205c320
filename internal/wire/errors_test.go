package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/nodeerr"
	"github.com/factstr/factstr-go/internal/streams"
)

// TestStatusMapping checks each error a store returns against the status
// the server sends and the error the client gets back from it.
func TestStatusMapping(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   codes.Code
		reason string
		back   error // FromStatus(ToStatus(err)) must errors.Is this; nil: no sentinel
	}{
		{"empty append", contract.ErrEmptyAppend, codes.InvalidArgument, ReasonEmptyAppend, contract.ErrEmptyAppend},
		{"invalid event", fmt.Errorf("event 2: %w", contract.ErrInvalidEvent), codes.InvalidArgument, ReasonInvalidEvent, contract.ErrInvalidEvent},
		{"invalid query", fmt.Errorf("x: %w", contract.ErrInvalidQuery), codes.InvalidArgument, ReasonInvalidQuery, contract.ErrInvalidQuery},
		{"limit", fmt.Errorf("x: %w", contract.ErrLimitExceeded), codes.ResourceExhausted, ReasonLimitExceeded, contract.ErrLimitExceeded},
		{"result too large", fmt.Errorf("x: %w", contract.ErrResultTooLarge), codes.ResourceExhausted, ReasonResultTooLarge, contract.ErrResultTooLarge},
		{"name in use", fmt.Errorf("x: %w", contract.ErrDurableNameInUse), codes.FailedPrecondition, ReasonNameInUse, contract.ErrDurableNameInUse},
		{"query mismatch", fmt.Errorf("x: %w", contract.ErrDurableQueryMismatch), codes.FailedPrecondition, ReasonQueryMismatch, contract.ErrDurableQueryMismatch},
		{"position ahead", fmt.Errorf("%w: from 9, the log ends at 3", contract.ErrPositionAhead), codes.OutOfRange, ReasonPositionAhead, contract.ErrPositionAhead},
		// A closed node is the server's state, not the client's: the client
		// retries elsewhere, so it does not come back as ErrClosed.
		{"closed", contract.ErrClosed, codes.Unavailable, ReasonClosed, nil},
		{"too slow", fmt.Errorf("x: %w", streams.ErrSubscriberTooSlow), codes.ResourceExhausted, ReasonTooSlow, nil},
		{"node error", fmt.Errorf("x: %w", nodeerr.ErrNoLeader), codes.Unavailable, ReasonNoLeader, nil},
		// The store's error wins over the deadline it wraps (see ToStatus).
		{"node error over deadline", fmt.Errorf("%w: %w", nodeerr.ErrNoLeader, context.DeadlineExceeded), codes.Unavailable, ReasonNoLeader, nil},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "", nil},
		{"canceled", context.Canceled, codes.Canceled, "", nil},
		{"other", errors.New("disk on fire"), codes.Internal, "", nil},
	}
	sentinels := []error{contract.ErrEmptyAppend, contract.ErrInvalidEvent, contract.ErrInvalidQuery, contract.ErrLimitExceeded,
		contract.ErrResultTooLarge, contract.ErrDurableNameInUse, contract.ErrDurableQueryMismatch, contract.ErrPositionAhead, contract.ErrClosed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serr := ToStatus(tt.err)
			st, ok := status.FromError(serr)
			if !ok {
				t.Fatalf("ToStatus returned %T %v, not a status", serr, serr)
			}
			if st.Code() != tt.code || Reason(serr) != tt.reason {
				t.Fatalf("ToStatus: %v %q, want %v %q", st.Code(), Reason(serr), tt.code, tt.reason)
			}
			back := FromStatus(serr)
			if tt.back == contract.ErrEmptyAppend {
				// Returned as the bare sentinel, as a local store returns it.
				if back != contract.ErrEmptyAppend {
					t.Errorf("FromStatus = %v, want contract.ErrEmptyAppend itself", back)
				}
				return
			}
			if status.Code(back) != tt.code {
				t.Errorf("FromStatus lost the code: %v, want %v", status.Code(back), tt.code)
			}
			if tt.back != nil && !strings.Contains(back.Error(), tt.err.Error()) {
				t.Errorf("FromStatus message %q lost the server's %q", back, tt.err)
			}
			for _, s := range sentinels {
				if got, want := errors.Is(back, s), s == tt.back; got != want {
					t.Errorf("errors.Is(FromStatus(ToStatus(err)), %v) = %v, want %v", s, got, want)
				}
			}
		})
	}
}

func TestStatusMappingConflict(t *testing.T) {
	err := fmt.Errorf("append-if: %w", &contract.ConflictError{Expected: 3, Actual: 8})
	serr := ToStatus(err)
	if status.Code(serr) != codes.Aborted || Reason(serr) != ReasonConflict {
		t.Fatalf("ToStatus: %v %q, want Aborted %q", status.Code(serr), Reason(serr), ReasonConflict)
	}
	var ce *contract.ConflictError
	if !errors.As(FromStatus(serr), &ce) || ce.Expected != 3 || ce.Actual != 8 {
		t.Fatalf("FromStatus = %v, want ConflictError{3, 8}", FromStatus(serr))
	}
}

func TestStatusMappingEdges(t *testing.T) {
	if ToStatus(nil) != nil {
		t.Error("ToStatus(nil) is not nil")
	}
	if FromStatus(nil) != nil {
		t.Error("FromStatus(nil) is not nil")
	}
	// A status error (from a peer, say) goes through unchanged. (Only
	// when it is not wrapped: ToStatus checks the error itself, not its
	// chain, so a wrapped status becomes INTERNAL.)
	peer := status.Error(codes.PermissionDenied, "no")
	if got := ToStatus(peer); got.Error() != peer.Error() || status.Code(got) != codes.PermissionDenied {
		t.Errorf("ToStatus of a status = %v, want it unchanged", got)
	}
	// An error that is no status, and a status without our reason, come
	// back as they are.
	plain := errors.New("plain")
	if got := FromStatus(plain); got != plain {
		t.Errorf("FromStatus(plain) = %v", got)
	}
	bare := status.Error(codes.InvalidArgument, "bare")
	if got := FromStatus(bare); got != bare || Reason(bare) != "" {
		t.Errorf("FromStatus(bare) = %v, reason %q", got, Reason(bare))
	}
	if Reason(plain) != "" {
		t.Errorf("Reason(plain) = %q", Reason(plain))
	}
}

func TestTokenCredentials(t *testing.T) {
	for _, requireTLS := range []bool{false, true} {
		c := TokenCredentials("s3cret", requireTLS)
		md, err := c.GetRequestMetadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if md["authorization"] != "Bearer s3cret" || len(md) != 1 {
			t.Errorf("metadata %v, want one bearer authorization", md)
		}
		if c.RequireTransportSecurity() != requireTLS {
			t.Errorf("RequireTransportSecurity = %v, want %v", c.RequireTransportSecurity(), requireTLS)
		}
	}
}
