package wire

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
)

// A failed call carried in a stream answer comes back as the unary call's
// error, sentinel and code included; what is not a failure is INTERNAL.
func TestStatusBytesRoundTrip(t *testing.T) {
	got := FromStatus(StatusFromBytes(StatusBytes(ToStatus(contract.ErrEmptyAppend))))
	if !errors.Is(got, contract.ErrEmptyAppend) {
		t.Fatalf("round trip: %v, want ErrEmptyAppend", got)
	}
	if code := status.Code(StatusFromBytes(StatusBytes(status.Error(codes.NotFound, "x")))); code != codes.NotFound {
		t.Fatalf("code %v, want NotFound", code)
	}
	for name, b := range map[string][]byte{"garbage": {0xff, 0xff}, "ok": StatusBytes(nil)} {
		if code := status.Code(StatusFromBytes(b)); code != codes.Internal {
			t.Fatalf("%s: code %v, want Internal", name, code)
		}
	}
}
