package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/internal/httpapi/apitest"
)

// TestDurableGroupOverSSE: two SSE connections join one consumer group
// with group_key and partitions; together they receive every event once,
// and GET /v1/durable/{name} shows the group's partitions.
func TestDurableGroupOverSSE(t *testing.T) {
	n := startNode(t, nil, nil)
	for i := range 8 {
		mustOK(t, "POST", n.url+"/v1/append", "", fmt.Sprintf(`{"events":[{"type":"t","payload":{"account":"a%d"}}]}`, i))
	}
	for _, bad := range []string{"?partitions=4", "?group_key=a..b", "?group_key=account&partitions=0", "?group_key=account&partitions=x"} {
		if code, b := call(t, "GET", n.url+"/v1/durable/ledger/stream"+bad, "", ""); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, code, b)
		}
	}
	path := n.url + "/v1/durable/ledger/stream?group_key=account&partitions=4"
	a, _, b := openSSE(t, "GET", path, "", "", "")
	if a == nil {
		t.Fatalf("first member: %s", b)
	}
	defer a.Close()
	var got []uint64
	for len(got) < 8 {
		if ev := a.Next(t); ev.Name == "batch" {
			for _, r := range decode[apitest.Batch](t, []byte(ev.Data)).Events {
				got = append(got, r.SequenceNumber)
			}
		}
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8]" {
		t.Fatalf("a member alone got %v, want every event once", got)
	}
	code, body := call(t, "GET", n.url+"/v1/durable/ledger", "", "")
	var info struct {
		Stream struct {
			Group struct {
				Spec       struct{ Key string }
				Partitions []struct{ Holder string }
				Members    []string
			}
		}
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET /v1/durable/ledger: %v: %s", err, body)
	}
	if code != http.StatusOK || info.Stream.Group.Spec.Key != "account" || len(info.Stream.Group.Partitions) != 4 || len(info.Stream.Group.Members) != 1 {
		t.Fatalf("GET /v1/durable/ledger: %d %s", code, body)
	}
	// A plain subscriber to the group's name is refused.
	if code, b := call(t, "GET", n.url+"/v1/durable/ledger/stream", "", ""); code != http.StatusBadRequest || !strings.Contains(string(b), "DURABLE_QUERY_MISMATCH") {
		t.Errorf("a plain subscriber to a group's name: %d %s, want 400 DURABLE_QUERY_MISMATCH", code, b)
	}
}
