package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/wire"
)

// StatusClientClosedRequest is the (nginx) status of a call the client
// cancelled; nobody reads it, but logs and metrics do.
const StatusClientClosedRequest = 499

// codeNames are the google.rpc.Code names the error body carries.
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// httpStatus is the HTTP status of a gRPC code.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return StatusClientClosedRequest
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss
}

// apiError is one error answer: its HTTP status and JSON body.
type apiError struct {
	status int
	body   []byte
}

// errorBody is {"error":{"code":..,"message":..,"reason":..}} (reason: the
// ErrorInfo reason, when the node gave one) plus extra, a list of name,
// raw JSON value pairs for the top level.
func errorBody(code codes.Code, msg, reason string, extra ...string) []byte {
	b := []byte(`{"error":{"code":`)
	name, ok := codeNames[code]
	if !ok {
		name = "UNKNOWN"
	}
	b = appendString(b, name)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	if reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, reason)
	}
	b = append(b, '}')
	for i := 0; i+1 < len(extra); i += 2 {
		b = append(b, ',')
		b = appendString(b, extra[i])
		b = append(b, ':')
		b = append(b, extra[i+1]...)
	}
	return append(b, '}', '\n')
}

// toAPIError maps an error of a gRPC call, or of the HTTP layer itself, to
// its answer.
func toAPIError(err error) apiError {
	switch {
	case errors.Is(err, errTooLarge):
		return apiError{http.StatusRequestEntityTooLarge, errorBody(codes.ResourceExhausted, err.Error(), "")}
	case errors.Is(err, errBadRequest):
		return apiError{http.StatusBadRequest, errorBody(codes.InvalidArgument, err.Error(), "")}
	case errors.Is(err, errURITooLong):
		return apiError{http.StatusRequestURITooLong, errorBody(codes.InvalidArgument, err.Error(), "")}
	}
	st := status.Convert(err)
	code := st.Code()
	httpCode := httpStatus(code)
	var extra []string
	for _, d := range st.Details() {
		if c, ok := d.(*factstrv1.AppendConflict); ok {
			extra = append(extra,
				"expected_context_version", strconv.FormatUint(c.GetExpectedContextVersion(), 10),
				"actual_context_version", strconv.FormatUint(c.GetActualContextVersion(), 10))
		}
	}
	if wire.Reason(err) == wire.ReasonNameInUse {
		// Another subscriber holds the durable name: a conflict with
		// another party, not a request to correct.
		httpCode = http.StatusConflict
	}
	return apiError{httpCode, errorBody(code, st.Message(), wire.Reason(err), extra...)}
}

func writeError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}
