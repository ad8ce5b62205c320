package cluster

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/wire"
)

// The node's errors travel two protocols: the public API (Classify, through
// wire.ToStatus, read by the client) and the peer service (statusFromLocal
// on the leader, peerError and adminError on the follower that forwarded).
// These tables pin both down, so the mapping can move to one place without
// changing what crosses the wire.

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{ErrOutcomeUnknown, codes.Unavailable, wire.ReasonOutcomeUnknown},
		{ErrNoLeader, codes.Unavailable, wire.ReasonNoLeader},
		{ErrNotLeader, codes.Unavailable, wire.ReasonNoLeader},
		{ErrLeft, codes.Unavailable, wire.ReasonNoLeader},
		{ErrUnknownNode, codes.NotFound, wire.ReasonNotFound},
		{ErrLastVoter, codes.FailedPrecondition, wire.ReasonFailedPrecondition},
		{ErrWrongCluster, codes.FailedPrecondition, wire.ReasonWrongCluster},
		{ErrWrongNode, codes.FailedPrecondition, wire.ReasonWrongCluster},
		{diskguard.ErrNoSpace, codes.ResourceExhausted, wire.ReasonNoSpace},
	}
	for _, tt := range tests {
		err := fmt.Errorf("context: %w", tt.err)
		code, reason, ok := Classify(err)
		if !ok || code != tt.code || reason != tt.reason {
			t.Errorf("Classify(%v) = %v %q %v, want %v %q", err, code, reason, ok, tt.code, tt.reason)
		}
		st := wire.ToStatus(err, Classify)
		if status.Code(st) != tt.code || wire.Reason(st) != tt.reason {
			t.Errorf("wire.ToStatus(%v, Classify) = %v %q, want %v %q", err, status.Code(st), wire.Reason(st), tt.code, tt.reason)
		}
	}
	if _, _, ok := Classify(errors.New("other")); ok {
		t.Error("Classify claims an error of no sentinel")
	}
}

// A leader's answer to a forwarded call, and what the follower makes of it.
func TestPeerStatusRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		back error // what peerError makes of the status (nil: no sentinel)
	}{
		{"not leader", ErrNotLeader, codes.FailedPrecondition, ErrNotLeader},
		{"outcome unknown", ErrOutcomeUnknown, codes.Aborted, ErrOutcomeUnknown},
		// The follower cannot tell whether a write reached the leader
		// before it lost its quorum or closed: the outcome is unknown.
		{"no leader", ErrNoLeader, codes.Unavailable, ErrOutcomeUnknown},
		{"closed", contract.ErrClosed, codes.Unavailable, ErrOutcomeUnknown},
		{"other", errors.New("disk on fire"), codes.Internal, nil},
	}
	sentinels := []error{ErrNotLeader, ErrOutcomeUnknown, ErrNoLeader, contract.ErrClosed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := statusFromLocal(fmt.Errorf("read index: %w", tt.err))
			if status.Code(st) != tt.code {
				t.Fatalf("statusFromLocal = %v, want %v", status.Code(st), tt.code)
			}
			back := peerError(st)
			for _, s := range sentinels {
				if got, want := errors.Is(back, s), s == tt.back; got != want {
					t.Errorf("errors.Is(peerError(statusFromLocal(err)), %v) = %v, want %v (%v)", s, got, want, back)
				}
			}
		})
	}
	// A broken connection (no status) and a call the leader gave up on:
	// the write may have reached it.
	for _, err := range []error{errors.New("connection reset"), status.Error(codes.DeadlineExceeded, "late"), status.Error(codes.Canceled, "gone")} {
		if back := peerError(err); !errors.Is(back, ErrOutcomeUnknown) {
			t.Errorf("peerError(%v) = %v, want ErrOutcomeUnknown", err, back)
		}
	}
}

// Forwarded admin calls answer with the public API's statuses; adminError
// maps the ones an admin call branches on back.
func TestAdminErrorRoundTrip(t *testing.T) {
	if adminError(nil) != nil {
		t.Fatal("adminError(nil) is not nil")
	}
	for _, want := range []error{ErrUnknownNode, ErrLastVoter} {
		back := adminError(wire.ToStatus(fmt.Errorf("remove n9: %w", want), Classify))
		if !errors.Is(back, want) {
			t.Errorf("adminError(ToStatus(%v)) = %v, want errors.Is %v", want, back, want)
		}
	}
	if back := adminError(status.Error(codes.FailedPrecondition, "n2 is not the leader")); !errors.Is(back, ErrNotLeader) {
		t.Errorf("adminError of a follower's refusal = %v, want ErrNotLeader", back)
	}
}
