package wire

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/nodeerr"
)

// A node's errors travel two protocols: the public API (ToStatus, read by
// the client) and the peer service (ToPeerStatus on the leader,
// FromPeerStatus on the follower that forwarded). These tables pin both
// down: what crosses the wire must not change between versions.

func TestNodeErrorsToStatus(t *testing.T) {
	tests := []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{nodeerr.ErrOutcomeUnknown, codes.Unavailable, ReasonOutcomeUnknown},
		{nodeerr.ErrNoLeader, codes.Unavailable, ReasonNoLeader},
		{nodeerr.ErrNotLeader, codes.Unavailable, ReasonNoLeader},
		{nodeerr.ErrLeft, codes.Unavailable, ReasonNoLeader},
		{nodeerr.ErrUnknownNode, codes.NotFound, ReasonNotFound},
		{nodeerr.ErrLastVoter, codes.FailedPrecondition, ReasonFailedPrecondition},
		{nodeerr.ErrWrongCluster, codes.FailedPrecondition, ReasonWrongCluster},
		{nodeerr.ErrWrongNode, codes.FailedPrecondition, ReasonWrongCluster},
		{diskguard.ErrNoSpace, codes.ResourceExhausted, ReasonNoSpace},
	}
	for _, tt := range tests {
		err := fmt.Errorf("context: %w", tt.err)
		st := ToStatus(err)
		if status.Code(st) != tt.code || Reason(st) != tt.reason {
			t.Errorf("ToStatus(%v) = %v %q, want %v %q", err, status.Code(st), Reason(st), tt.code, tt.reason)
		}
	}
}

// A leader's answer to a forwarded call, and what the follower makes of it.
func TestPeerStatusRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		back error // what FromPeerStatus makes of the status (nil: no sentinel)
	}{
		{"not leader", nodeerr.ErrNotLeader, codes.FailedPrecondition, nodeerr.ErrNotLeader},
		{"outcome unknown", nodeerr.ErrOutcomeUnknown, codes.Aborted, nodeerr.ErrOutcomeUnknown},
		// The follower cannot tell whether a write reached the leader
		// before it lost its quorum or closed: the outcome is unknown.
		{"no leader", nodeerr.ErrNoLeader, codes.Unavailable, nodeerr.ErrOutcomeUnknown},
		{"closed", contract.ErrClosed, codes.Unavailable, nodeerr.ErrOutcomeUnknown},
		{"other", errors.New("disk on fire"), codes.Internal, nil},
	}
	sentinels := []error{nodeerr.ErrNotLeader, nodeerr.ErrOutcomeUnknown, nodeerr.ErrNoLeader, contract.ErrClosed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ToPeerStatus(fmt.Errorf("read index: %w", tt.err))
			if status.Code(st) != tt.code {
				t.Fatalf("ToPeerStatus = %v, want %v", status.Code(st), tt.code)
			}
			back := FromPeerStatus(st)
			for _, s := range sentinels {
				if got, want := errors.Is(back, s), s == tt.back; got != want {
					t.Errorf("errors.Is(FromPeerStatus(ToPeerStatus(err)), %v) = %v, want %v (%v)", s, got, want, back)
				}
			}
		})
	}
	// A broken connection (no status) and a call the leader gave up on:
	// the write may have reached it.
	for _, err := range []error{errors.New("connection reset"), status.Error(codes.DeadlineExceeded, "late"), status.Error(codes.Canceled, "gone")} {
		if back := FromPeerStatus(err); !errors.Is(back, nodeerr.ErrOutcomeUnknown) {
			t.Errorf("FromPeerStatus(%v) = %v, want nodeerr.ErrOutcomeUnknown", err, back)
		}
	}
}

// Forwarded admin calls answer with the public API's statuses; FromPeerStatus
// maps the ones an admin call branches on back.
func TestAdminErrorRoundTrip(t *testing.T) {
	if FromPeerStatus(nil) != nil {
		t.Fatal("FromPeerStatus(nil) is not nil")
	}
	for _, want := range []error{nodeerr.ErrUnknownNode, nodeerr.ErrLastVoter} {
		back := FromPeerStatus(ToStatus(fmt.Errorf("remove n9: %w", want)))
		if !errors.Is(back, want) {
			t.Errorf("FromPeerStatus(ToStatus(%v)) = %v, want errors.Is %v", want, back, want)
		}
	}
	if back := FromPeerStatus(status.Error(codes.FailedPrecondition, "n2 is not the leader")); !errors.Is(back, nodeerr.ErrNotLeader) {
		t.Errorf("FromPeerStatus of a follower's refusal = %v, want nodeerr.ErrNotLeader", back)
	}
}
