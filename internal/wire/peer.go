package wire

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/nodeerr"
)

// The peer service (factstr.peer.v1) carries a node's errors between
// nodes of one cluster: a leader answers a forwarded call with
// ToPeerStatus, and the follower that forwarded it turns the status back
// into an error with FromPeerStatus. The codes are those of every earlier
// version, so that nodes of two versions still understand each other in a
// rolling upgrade; the public API has its own mapping (ToStatus).

// ToPeerStatus maps the error of a call another node forwarded.
func ToPeerStatus(err error) error {
	switch {
	case errors.Is(err, nodeerr.ErrNotLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, nodeerr.ErrOutcomeUnknown):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, nodeerr.ErrNoLeader), errors.Is(err, contract.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

// FromPeerStatus turns a peer's answer back into the node's errors. An
// admin call the leader refused keeps its reason (an unknown node, the last
// voter); every answer that leaves the outcome open (the connection broke,
// the call timed out, the leader lost its leadership while applying) is
// ErrOutcomeUnknown, so that the caller retries with the same idempotency
// key.
func FromPeerStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", nodeerr.ErrOutcomeUnknown, err)
	}
	switch Reason(err) {
	case ReasonNotFound:
		return fmt.Errorf("%w: %s", nodeerr.ErrUnknownNode, st.Message())
	case ReasonFailedPrecondition:
		return fmt.Errorf("%w: %s", nodeerr.ErrLastVoter, st.Message())
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", nodeerr.ErrNotLeader, st.Message())
	case codes.Unavailable:
		// The request may have reached the leader before the connection
		// broke.
		return fmt.Errorf("%w: %s", nodeerr.ErrOutcomeUnknown, st.Message())
	case codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return fmt.Errorf("%w: %s", nodeerr.ErrOutcomeUnknown, st.Message())
	default:
		return fmt.Errorf("leader: %s: %s", st.Code(), st.Message())
	}
}
