//go:build unix

package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/internal/testcluster"
	"github.com/factstr/factstr-go/internal/wire"
)

// TestQueryResultBound runs a real node with a small --max-query-bytes and
// reads through the Go client: a result over the bound comes as the first
// page with RESOURCE_EXHAUSTED (contract.ErrResultTooLarge), paging by
// MinSequenceNumber reads everything, a result under the bound is whole.
func TestQueryResultBound(t *testing.T) {
	skipShort(t)
	testcluster.Build(t)
	const maxQuery = 8 << 10
	c := testcluster.Start(t, testcluster.Options{Nodes: 1, Args: []string{
		"--max-payload-bytes", "4096", "--max-query-bytes", "8192",
	}})
	cl := c.Client(t, c.Node(0).Addr())

	t.Run("status", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		// 16 events of about 1 KiB: twice the bound.
		var batch []contract.NewEvent
		for range 16 {
			batch = append(batch, contract.NewEvent{Type: "status", Payload: json.RawMessage(`"` + strings.Repeat("s", 1000) + `"`)})
		}
		if _, err := cl.Append(ctx, batch); err != nil {
			t.Fatalf("append: %v", err)
		}
		res, err := cl.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"status"}}}})
		if !errors.Is(err, contract.ErrResultTooLarge) {
			t.Fatalf("query of 16 KB with a bound of %d: got %v, want contract.ErrResultTooLarge", maxQuery, err)
		}
		if code := status.Code(err); code != codes.ResourceExhausted {
			t.Errorf("status code %v, want ResourceExhausted", code)
		}
		if reason := wire.Reason(err); reason != wire.ReasonResultTooLarge {
			t.Errorf("ErrorInfo reason %q, want %q", reason, wire.ReasonResultTooLarge)
		}
		if !strings.Contains(err.Error(), "MinSequenceNumber") {
			t.Errorf("error %q does not say how to page", err)
		}
		if len(res.Events) == 0 || res.LastReturnedSequenceNumber != res.Events[len(res.Events)-1].SequenceNumber {
			t.Errorf("first page: %d events, LastReturnedSequenceNumber %d; want the events that fit", len(res.Events), res.LastReturnedSequenceNumber)
		}
	})

	conformance.RunResultBound(t, maxQuery, func(t *testing.T) contract.EventStore { return noClose{cl} })
}

// noClose lets a suite use the shared client without closing it.
type noClose struct{ contract.EventStore }

func (noClose) Close() error { return nil }

// TestAppendOverBatchBytesRefused: with the default limits, an append over
// contract.DefaultLimits.MaxBatchBytes (which, with MaxAppendEntries,
// bounds one Raft AppendEntries) is refused with RESOURCE_EXHAUSTED before
// anything is written; one just under it commits.
func TestAppendOverBatchBytesRefused(t *testing.T) {
	skipShort(t)
	testcluster.Build(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 1})
	cl := c.Client(t, c.Node(0).Addr())
	ctx := testCtx(t, 30*time.Second)

	// Events of 512 KiB (type and payload), the first one also taking the
	// remainder: exactly total bytes as the limit counts them.
	batch := func(total int) []contract.NewEvent {
		const per = 512 << 10
		var out []contract.NewEvent
		for i := range total / per {
			size := per
			if i == 0 {
				size += total % per
			}
			out = append(out, contract.NewEvent{Type: "big", Payload: json.RawMessage(`"` + strings.Repeat("b", size-len("big")-2) + `"`)})
		}
		return out
	}
	limit := contract.DefaultLimits.MaxBatchBytes
	_, err := cl.Append(ctx, batch(limit+1))
	if code := status.Code(err); code != codes.ResourceExhausted || !errors.Is(err, contract.ErrLimitExceeded) {
		t.Fatalf("append of %d bytes: got %v (code %v), want ResourceExhausted / contract.ErrLimitExceeded", limit+1, err, code)
	}
	res, err := cl.Query(ctx, contract.EventQuery{})
	if err != nil || len(res.Events) != 0 {
		t.Fatalf("after the refused append: %d events, %v; want none written", len(res.Events), err)
	}
	if _, err := cl.Append(ctx, batch(limit)); err != nil {
		t.Fatalf("append of exactly %d bytes: %v", limit, err)
	}
}
