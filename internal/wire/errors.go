package wire

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/nodeerr"
	"github.com/factstr/factstr-go/internal/streams"
)

// Domain of the ErrorInfo details this package attaches.
const Domain = "factstr.dev"

// Reasons in ErrorInfo, so a client maps a status back to the sentinel.
const (
	ReasonEmptyAppend        = "EMPTY_APPEND"
	ReasonInvalidEvent       = "INVALID_EVENT"
	ReasonInvalidQuery       = "INVALID_QUERY"
	ReasonLimitExceeded      = "LIMIT_EXCEEDED"
	ReasonResultTooLarge     = "RESULT_TOO_LARGE"
	ReasonConflict           = "CONTEXT_VERSION_CONFLICT"
	ReasonNameInUse          = "DURABLE_NAME_IN_USE"
	ReasonQueryMismatch      = "DURABLE_QUERY_MISMATCH"
	ReasonNoLeader           = "NO_LEADER"
	ReasonOutcomeUnknown     = "OUTCOME_UNKNOWN"
	ReasonClosed             = "CLOSED"
	ReasonPositionAhead      = "POSITION_AHEAD"
	ReasonUnauthenticated    = "UNAUTHENTICATED"
	ReasonWrongCluster       = "WRONG_CLUSTER"
	ReasonNotFound           = "NOT_FOUND"
	ReasonFailedPrecondition = "FAILED_PRECONDITION"
	ReasonNoSpace            = "NO_SPACE"
	ReasonTooSlow            = "SUBSCRIBER_TOO_SLOW"
	ReasonDurableNotFound    = "DURABLE_NOT_FOUND"
)

// ToStatus maps an error from a store to a gRPC status error whose message
// says what was wrong and what to do.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return se.GRPCStatus().Err()
	}
	var conflict *contract.ConflictError
	switch {
	case errors.As(err, &conflict):
		st := status.New(codes.Aborted, fmt.Sprintf("%v; query the context again and decide anew", err))
		st, _ = st.WithDetails(
			&errdetails.ErrorInfo{Reason: ReasonConflict, Domain: Domain},
			&factstrv1.AppendConflict{ExpectedContextVersion: conflict.Expected, ActualContextVersion: conflict.Actual},
		)
		return st.Err()
	case errors.Is(err, contract.ErrEmptyAppend):
		return withReason(codes.InvalidArgument, ReasonEmptyAppend, err.Error()+"; send at least one event")
	case errors.Is(err, contract.ErrInvalidEvent):
		return withReason(codes.InvalidArgument, ReasonInvalidEvent, err.Error())
	case errors.Is(err, contract.ErrInvalidQuery):
		return withReason(codes.InvalidArgument, ReasonInvalidQuery, err.Error())
	case errors.Is(err, contract.ErrLimitExceeded):
		return withReason(codes.ResourceExhausted, ReasonLimitExceeded, err.Error())
	case errors.Is(err, contract.ErrResultTooLarge):
		return withReason(codes.ResourceExhausted, ReasonResultTooLarge, err.Error())
	case errors.Is(err, contract.ErrDurableNameInUse):
		return withReason(codes.FailedPrecondition, ReasonNameInUse, err.Error()+"; unsubscribe the other subscriber or use another name")
	case errors.Is(err, contract.ErrDurableQueryMismatch):
		return withReason(codes.FailedPrecondition, ReasonQueryMismatch, err.Error()+"; subscribe with that query, use a new name, or delete the name (factstr-node admin streams delete)")
	case errors.Is(err, contract.ErrClosed):
		return withReason(codes.Unavailable, ReasonClosed, "the node is shutting down; retry on another node")
	case errors.Is(err, contract.ErrDurableNotFound):
		return withReason(codes.NotFound, ReasonDurableNotFound, err.Error())
	case errors.Is(err, contract.ErrPositionAhead):
		return withReason(codes.OutOfRange, ReasonPositionAhead, err.Error())
	case errors.Is(err, streams.ErrSubscriberTooSlow):
		return withReason(codes.ResourceExhausted, ReasonTooSlow, err.Error()+"; stream again with catch-up from the last sequence number received (a durable stream resumes from its cursor)")
	}
	// The store's own errors come before the context's: a node that gave up
	// waiting for a leader wraps its deadline, and that is UNAVAILABLE (retry
	// elsewhere), not the caller's DEADLINE_EXCEEDED.
	switch {
	case errors.Is(err, nodeerr.ErrOutcomeUnknown):
		return withReason(codes.Unavailable, ReasonOutcomeUnknown, err.Error())
	case errors.Is(err, nodeerr.ErrNoLeader), errors.Is(err, nodeerr.ErrNotLeader), errors.Is(err, nodeerr.ErrLeft):
		return withReason(codes.Unavailable, ReasonNoLeader, err.Error())
	case errors.Is(err, nodeerr.ErrUnknownNode):
		return withReason(codes.NotFound, ReasonNotFound, err.Error())
	case errors.Is(err, nodeerr.ErrLastVoter):
		return withReason(codes.FailedPrecondition, ReasonFailedPrecondition, err.Error())
	case errors.Is(err, nodeerr.ErrWrongCluster), errors.Is(err, nodeerr.ErrWrongNode):
		return withReason(codes.FailedPrecondition, ReasonWrongCluster, err.Error())
	case errors.Is(err, diskguard.ErrNoSpace):
		return withReason(codes.ResourceExhausted, ReasonNoSpace, err.Error())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func withReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: Domain}); err == nil {
		st = d
	}
	return st.Err()
}

// Reason returns the ErrorInfo reason of a status error, or "".
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info.GetReason()
		}
	}
	return ""
}

// FromStatus maps a status error back to the contract's sentinels, keeping
// the server's message.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if c, ok := d.(*factstrv1.AppendConflict); ok {
			return &contract.ConflictError{Expected: c.GetExpectedContextVersion(), Actual: c.GetActualContextVersion()}
		}
	}
	var sentinel error
	switch Reason(err) {
	case ReasonEmptyAppend:
		return contract.ErrEmptyAppend
	case ReasonInvalidEvent:
		sentinel = contract.ErrInvalidEvent
	case ReasonInvalidQuery:
		sentinel = contract.ErrInvalidQuery
	case ReasonLimitExceeded:
		sentinel = contract.ErrLimitExceeded
	case ReasonResultTooLarge:
		sentinel = contract.ErrResultTooLarge
	case ReasonNameInUse:
		sentinel = contract.ErrDurableNameInUse
	case ReasonQueryMismatch:
		sentinel = contract.ErrDurableQueryMismatch
	case ReasonPositionAhead:
		sentinel = contract.ErrPositionAhead
	case ReasonDurableNotFound:
		sentinel = contract.ErrDurableNotFound
	}
	if sentinel == nil {
		return err
	}
	return &StatusError{st: st, sentinel: sentinel}
}

// StatusError is a server status that also unwraps to a contract sentinel.
type StatusError struct {
	st       *status.Status
	sentinel error
}

func (e *StatusError) Error() string              { return e.st.Message() }
func (e *StatusError) Unwrap() error              { return e.sentinel }
func (e *StatusError) GRPCStatus() *status.Status { return e.st }
