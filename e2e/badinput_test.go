//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
	"github.com/factstr/factstr-go/internal/wire"
)

// TestBadInputStatusCodes sends invalid requests to a follower and to the
// leader, raw over gRPC and through the Go client, and checks the status
// codes (and the contract errors the client maps them to). Afterwards the
// log must hold exactly the valid appends.
func TestBadInputStatusCodes(t *testing.T) {
	skipShort(t)
	const maxPayload, maxBatch = 1024, 10
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, Args: []string{
		"--max-payload-bytes", fmt.Sprint(maxPayload), "--max-batch-events", fmt.Sprint(maxBatch),
	}})
	ctx := testCtx(t, 2*time.Minute)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}

	pe := func(typ, payload string) *factstrv1.Event {
		return &factstrv1.Event{Type: typ, Payload: []byte(payload)}
	}
	typeQuery := func(types ...string) *factstrv1.EventQuery {
		return &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{EventTypes: &factstrv1.StringList{Values: types}}}}
	}
	badPredQuery := &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{PayloadPredicates: &factstrv1.BytesList{Values: [][]byte{[]byte(`{"a":`)}}}}}
	big := `{"x":"` + strings.Repeat("a", maxPayload) + `"}`
	tooMany := make([]*factstrv1.Event, maxBatch+1)
	for i := range tooMany {
		tooMany[i] = pe("T", fmt.Sprintf(`{"n":%d}`, i))
	}

	var valid []string // payloads of the valid appends, in order
	// wantCode checks the status code and the ErrorInfo reason the Go
	// client maps back to a contract error.
	wantCode := func(t *testing.T, what string, err error, code codes.Code, reason string) *status.Status {
		t.Helper()
		st, _ := status.FromError(err)
		if err == nil || st.Code() != code {
			t.Errorf("%s: got %v, want code %v", what, err, code)
			return st
		}
		if got := wire.Reason(err); got != reason {
			t.Errorf("%s: ErrorInfo reason %q, want %q (status %v)", what, got, reason, err)
		}
		return st
	}

	for _, target := range []struct {
		name string
		node int
	}{{"follower", follower}, {"leader", leader}} {
		t.Run("raw gRPC to the "+target.name, func(t *testing.T) {
			conn, err := c.Node(target.node).Conn()
			if err != nil {
				t.Fatal(err)
			}
			es := factstrv1.NewEventStoreServiceClient(conn)

			payload := fmt.Sprintf(`{"valid":%q}`, target.name)
			if _, err := es.Append(ctx, &factstrv1.AppendRequest{Events: []*factstrv1.Event{pe("T", payload)}}); err != nil {
				t.Fatalf("valid append: %v", err)
			}
			valid = append(valid, payload)

			appendCases := []struct {
				what   string
				events []*factstrv1.Event
				code   codes.Code
				reason string
			}{
				{"invalid JSON payload", []*factstrv1.Event{pe("T", `{"a":`)}, codes.InvalidArgument, wire.ReasonInvalidEvent},
				{"empty batch", nil, codes.InvalidArgument, wire.ReasonEmptyAppend},
				{"empty type", []*factstrv1.Event{pe("", `{}`)}, codes.InvalidArgument, wire.ReasonInvalidEvent},
				{"a valid event, then an invalid one", []*factstrv1.Event{pe("T", `{"half":1}`), pe("T", `nope`)}, codes.InvalidArgument, wire.ReasonInvalidEvent},
				{"oversize payload", []*factstrv1.Event{pe("T", big)}, codes.ResourceExhausted, wire.ReasonLimitExceeded},
				{"oversize type", []*factstrv1.Event{pe(strings.Repeat("t", 257), `{}`)}, codes.ResourceExhausted, wire.ReasonLimitExceeded},
				{"too many events", tooMany, codes.ResourceExhausted, wire.ReasonLimitExceeded},
			}
			for _, tc := range appendCases {
				_, err := es.Append(ctx, &factstrv1.AppendRequest{Events: tc.events})
				wantCode(t, "Append with "+tc.what, err, tc.code, tc.reason)
				_, err = es.AppendIf(ctx, &factstrv1.AppendIfRequest{Events: tc.events, Context: typeQuery("none"), ExpectedContextVersion: 0})
				wantCode(t, "AppendIf with "+tc.what, err, tc.code, tc.reason)
			}

			// AppendIf conflict: Aborted, with expected and actual versions.
			version := queryVersion(t, ctx, es, typeQuery("T"))
			_, err = es.AppendIf(ctx, &factstrv1.AppendIfRequest{Events: []*factstrv1.Event{pe("T", `{"conflict":1}`)}, Context: typeQuery("T"), ExpectedContextVersion: version - 1})
			st := wantCode(t, "AppendIf on a moved context", err, codes.Aborted, wire.ReasonConflict)
			var conflict *factstrv1.AppendConflict
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *factstrv1.AppendConflict:
					conflict = d
				case *errdetails.ErrorInfo:
					info = d
				}
			}
			if conflict == nil || conflict.GetExpectedContextVersion() != version-1 || conflict.GetActualContextVersion() != version {
				t.Errorf("conflict details: %v, want AppendConflict expected %d actual %d", st.Details(), version-1, version)
			}
			if info == nil || info.GetDomain() != wire.Domain {
				t.Errorf("conflict ErrorInfo: %v, want domain %q", info, wire.Domain)
			}

			// Invalid predicates: Query, AppendIf context, Stream.
			qs, err := es.Query(ctx, &factstrv1.QueryRequest{Query: badPredQuery})
			if err == nil {
				_, err = qs.Recv()
			}
			wantCode(t, "Query with an invalid predicate", err, codes.InvalidArgument, wire.ReasonInvalidQuery)
			_, err = es.AppendIf(ctx, &factstrv1.AppendIfRequest{Events: []*factstrv1.Event{pe("T", `{}`)}, Context: badPredQuery})
			wantCode(t, "AppendIf with an invalid context predicate", err, codes.InvalidArgument, wire.ReasonInvalidQuery)
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			ss, err := es.Stream(sctx, &factstrv1.StreamRequest{Query: badPredQuery})
			if err == nil {
				_, err = ss.Recv()
			}
			scancel()
			wantCode(t, "Stream with an invalid predicate", err, codes.InvalidArgument, wire.ReasonInvalidQuery)

			// A durable name held through the other node: FailedPrecondition.
			other := leader
			if target.node == leader {
				other = follower
			}
			holder := holdDurable(t, ctx, c.Node(other), "held-"+target.name)
			err = subscribeDurable(ctx, es, "held-"+target.name)
			wantCode(t, "StreamDurable on a held name", err, codes.FailedPrecondition, wire.ReasonNameInUse)
			holder()
		})
	}

	// The same through the Go client, to the follower and to the leader.
	for _, target := range []struct {
		name string
		node int
	}{{"follower", follower}, {"leader", leader}} {
		t.Run("client to the "+target.name, func(t *testing.T) {
			cl := c.Client(t, c.Node(target.node).Addr())
			payload := fmt.Sprintf(`{"valid":"client-%s"}`, target.name)
			res, err := cl.Append(ctx, []contract.NewEvent{ev("T", payload)})
			if err != nil {
				t.Fatalf("valid append: %v", err)
			}
			valid = append(valid, payload)

			isErr := func(what string, err, want error) {
				t.Helper()
				if !errors.Is(err, want) {
					t.Errorf("%s: got %v, want errors.Is %v", what, err, want)
				}
			}
			_, err = cl.Append(ctx, nil)
			isErr("Append of no events", err, contract.ErrEmptyAppend)
			_, err = cl.AppendIf(ctx, []contract.NewEvent{}, contract.EventQuery{}, 0)
			isErr("AppendIf of no events", err, contract.ErrEmptyAppend)
			_, err = cl.Append(ctx, []contract.NewEvent{ev("T", `{"a":`)})
			isErr("invalid JSON payload", err, contract.ErrInvalidEvent)
			_, err = cl.Append(ctx, []contract.NewEvent{ev("", `{}`)})
			isErr("empty type", err, contract.ErrInvalidEvent)
			_, err = cl.Append(ctx, []contract.NewEvent{ev("T", big)})
			isErr("oversize payload", err, contract.ErrLimitExceeded)
			many := make([]contract.NewEvent, maxBatch+1)
			for i := range many {
				many[i] = ev("T", `{}`)
			}
			_, err = cl.Append(ctx, many)
			isErr("too many events", err, contract.ErrLimitExceeded)
			_, err = cl.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{PayloadPredicates: []json.RawMessage{json.RawMessage(`{"a":`)}}}})
			isErr("Query with an invalid predicate", err, contract.ErrInvalidQuery)

			tq := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"T"}}}}
			_, err = cl.AppendIf(ctx, []contract.NewEvent{ev("T", `{"conflict":2}`)}, tq, res.LastSequenceNumber-1)
			var conflict *contract.ConflictError
			if !errors.As(err, &conflict) {
				t.Errorf("AppendIf on a moved context: got %v, want a *contract.ConflictError", err)
			} else if conflict.Expected != res.LastSequenceNumber-1 || conflict.Actual != res.LastSequenceNumber {
				t.Errorf("ConflictError %+v, want Expected %d Actual %d", *conflict, res.LastSequenceNumber-1, res.LastSequenceNumber)
			}

			name := "held-client-" + target.name
			sub, err := cl.StreamToDurable(ctx, name, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"none"}}}},
				func(context.Context, []contract.EventRecord) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Client(t, c.Node(leader).Addr()).StreamToDurable(ctx, name, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"none"}}}},
				func(context.Context, []contract.EventRecord) error { return nil })
			isErr("durable name held", err, contract.ErrDurableNameInUse)
			sub.Unsubscribe()
		})
	}

	// Nothing half-written: the log is exactly the valid appends.
	res, err := c.Client(t, c.Node(follower).Addr()).Query(ctx, contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Events {
		got = append(got, string(r.Payload))
	}
	if strings.Join(got, "\n") != strings.Join(valid, "\n") {
		t.Fatalf("the log holds\n  %s\nwant exactly the valid appends\n  %s", strings.Join(got, "\n  "), strings.Join(valid, "\n  "))
	}
	checkGapless(t, "the log", res.Events)
}

// TestHostileInputRefused replays hostile payloads and queries against a
// real node with its default limits: each is refused with InvalidArgument
// before anything is proposed, and the log holds only the valid append.
func TestHostileInputRefused(t *testing.T) {
	skipShort(t)
	c := testcluster.Start(t, testcluster.Options{Nodes: 1})
	ctx := testCtx(t, 2*time.Minute)
	conn, err := c.Node(0).Conn()
	if err != nil {
		t.Fatal(err)
	}
	es := factstrv1.NewEventStoreServiceClient(conn)
	pe := func(payload string) []*factstrv1.Event {
		return []*factstrv1.Event{{Type: "T", Payload: []byte(payload)}}
	}
	nested := func(depth int, key string) string {
		return strings.Repeat(`{"`+key+`":`, depth) + "1" + strings.Repeat("}", depth)
	}
	if _, err := es.Append(ctx, &factstrv1.AppendRequest{Events: pe(`{"seat":"12A"}`)}); err != nil {
		t.Fatalf("valid append: %v", err)
	}
	deep := nested(6000, strings.Repeat("k", 98))
	if len(deep) < 600_000 {
		t.Fatalf("the finding's payload is %d bytes, want about 618 KB", len(deep))
	}
	appends := []struct{ what, payload, says string }{
		{"the finding's payload (depth 6,000, 98-byte keys)", deep, "nested deeper than 64"},
		{"depth 10,000 in under 1 MiB", nested(10_000, "k"), "nested deeper than 64"},
		{"a number of a million digits", `{"n":` + strings.Repeat("7", 1_000_000) + `}`, "1000000 digits"},
		{"20,000 leaves", "[" + strings.Repeat("1,", 19_999) + "1]", "scalar values"},
		{"a duplicate key", `{"seat":"12A","seat":"12B"}`, "twice"},
		{"invalid UTF-8 in a string", "{\"seat\":\"\xff\"}", "UTF-8"},
	}
	for _, a := range appends {
		_, err := es.Append(ctx, &factstrv1.AppendRequest{Events: pe(a.payload)})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || wire.Reason(err) != wire.ReasonInvalidEvent || !strings.Contains(st.Message(), a.says) {
			t.Errorf("Append of %s: %v, want InvalidArgument %s saying %q", a.what, err, wire.ReasonInvalidEvent, a.says)
		}
	}

	manyFilters := &factstrv1.EventQuery{}
	for range 100_000 {
		manyFilters.Filters = append(manyFilters.Filters, &factstrv1.EventFilter{EventTypes: &factstrv1.StringList{Values: []string{"T"}}})
	}
	unnarrowed := &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{PayloadPredicates: &factstrv1.BytesList{Values: [][]byte{[]byte(`{}`)}}}}}
	contexts := []struct {
		what string
		ctx  *factstrv1.EventQuery
		says string
	}{
		{"100,000 filters", manyFilters, "100000 filters"},
		{"a context no index narrows", unnarrowed, "add an event type"},
	}
	for _, q := range contexts {
		_, err := es.AppendIf(ctx, &factstrv1.AppendIfRequest{Events: pe(`{"seat":"12C"}`), Context: q.ctx, ExpectedContextVersion: 1})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || wire.Reason(err) != wire.ReasonInvalidQuery || !strings.Contains(st.Message(), q.says) {
			t.Errorf("AppendIf with %s: %v, want InvalidArgument %s saying %q", q.what, err, wire.ReasonInvalidQuery, q.says)
		}
	}
	qs, err := es.Query(ctx, &factstrv1.QueryRequest{Query: manyFilters})
	if err == nil {
		_, err = qs.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Query with 100,000 filters: %v, want InvalidArgument", err)
	}
	if v := queryVersion(t, ctx, es, &factstrv1.EventQuery{}); v != 1 {
		t.Fatalf("the log holds %d events after the refused requests, want only the valid one", v)
	}
}

func queryVersion(t *testing.T, ctx context.Context, es factstrv1.EventStoreServiceClient, q *factstrv1.EventQuery) uint64 {
	t.Helper()
	st, err := es.Query(ctx, &factstrv1.QueryRequest{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	var v uint64
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return v
		}
		if err != nil {
			t.Fatal(err)
		}
		v = m.GetCurrentContextVersion()
	}
}

// subscribeDurable opens a durable stream with a query that matches nothing
// and returns the error of its subscription (nil once subscribed; the
// stream is then cancelled).
func subscribeDurable(ctx context.Context, es factstrv1.EventStoreServiceClient, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := es.StreamDurable(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{
		Name: name, Query: &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{EventTypes: &factstrv1.StringList{Values: []string{"none"}}}}},
	}}}); err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return err
		}
		if m.GetSubscribed() != nil {
			return nil
		}
	}
}

// holdDurable subscribes name on node (raw gRPC) and returns a function
// that unsubscribes and waits for the release.
func holdDurable(t *testing.T, ctx context.Context, node *testcluster.Node, name string) func() {
	t.Helper()
	conn, err := node.Conn()
	if err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	st, err := factstrv1.NewEventStoreServiceClient(conn).StreamDurable(hctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := st.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{
		Name: name, Query: &factstrv1.EventQuery{Filters: []*factstrv1.EventFilter{{EventTypes: &factstrv1.StringList{Values: []string{"none"}}}}},
	}}}); err != nil {
		cancel()
		t.Fatal(err)
	}
	for {
		m, err := st.Recv()
		if err != nil {
			cancel()
			t.Fatalf("hold durable %q on %s: %v", name, node.ID(), err)
		}
		if m.GetSubscribed() != nil {
			break
		}
	}
	return func() {
		defer cancel()
		if err := st.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Unsubscribe{Unsubscribe: &factstrv1.DurableUnsubscribe{}}}); err != nil {
			t.Errorf("unsubscribe %q: %v", name, err)
			return
		}
		for {
			m, err := st.Recv()
			if err != nil {
				t.Errorf("durable %q ended without Released: %v", name, err)
				return
			}
			if m.GetReleased() != nil {
				return
			}
		}
	}
}
