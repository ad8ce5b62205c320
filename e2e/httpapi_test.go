//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/httpapi/apitest"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestHTTPAPIOnACluster exercises every route of the HTTP/JSON API over
// real sockets against a 3-node cluster of processes started with an
// --auth-file: writes through a follower's port, byte-exact payloads,
// errors with their HTTP statuses, tokens and roles, a live stream
// resumed by position on another node, a durable stream whose cursor
// advances across nodes, and the admin routes down to a node leaving.
func TestHTTPAPIOnACluster(t *testing.T) {
	skipShort(t)
	const reader, writer, admin = "reader-token-0123456789abcdef", "writer-token-0123456789abcdef", "admin-token-0123456789abcdef"
	authFile := filepath.Join(t.TempDir(), "auth.json")
	b, _ := json.Marshal([]map[string]string{
		{"name": "r", "token": reader, "role": "reader"},
		{"name": "w", "token": writer, "role": "writer"},
		{"name": "a", "token": admin, "role": "admin"},
	})
	if err := os.WriteFile(authFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{Nodes: 3, Args: []string{"--auth-file", authFile}, Token: admin})
	ctx := testCtx(t, 3*time.Minute)
	li, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oi := 3 - li - fi // the third node
	leader, follower, other := c.Node(li).HTTPURL(), c.Node(fi).HTTPURL(), c.Node(oi).HTTPURL()
	for i, nd := range c.Nodes() {
		if nd.HTTPAddr() == "" {
			t.Fatalf("node %d has no HTTP address", i)
		}
	}

	t.Run("status and members", func(t *testing.T) {
		for _, u := range []string{leader, follower, other} {
			st := apitest.Decode[map[string]any](t, apitest.MustOK(t, "GET", u+"/v1/status", reader, ""))
			if st["leader_id"] != c.Node(li).ID() || len(st["members"].([]any)) != 3 {
				t.Fatalf("status on %s: %v", u, st)
			}
		}
		ms := apitest.Decode[map[string][]map[string]any](t, apitest.MustOK(t, "GET", follower+"/v1/members", admin, ""))
		if len(ms["members"]) != 3 {
			t.Fatalf("members: %v", ms)
		}
	})

	t.Run("tokens and roles", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, token, body string
			status                    int
		}{
			{"GET", "/v1/status", "", "", 401},
			{"GET", "/v1/status", "not-a-token-at-all", "", 401},
			{"GET", "/v1/members", writer, "", 403},
			{"POST", "/v1/append", reader, `{"events":[{"type":"t","payload":{}}]}`, 403},
			{"POST", "/v1/append-if", reader, `{"events":[{"type":"t","payload":{}}]}`, 403},
			{"POST", "/v1/query", "", `{}`, 401},
			{"POST", "/v1/admin/join", writer, `{"addr":"127.0.0.1:1"}`, 403},
			{"POST", "/v1/admin/remove", writer, `{"node_id":"x"}`, 403},
			{"POST", "/v1/admin/leave", reader, ``, 403},
			{"POST", "/v1/admin/transfer-leadership", writer, ``, 403},
			{"GET", "/v1/openapi.json", "", "", 200},
		} {
			code, b := apitest.Call(t, tc.method, follower+tc.path, tc.token, tc.body)
			if code != tc.status {
				t.Errorf("%s %s as %q: %d %s, want %d", tc.method, tc.path, tc.token, code, b, tc.status)
			}
		}
		for _, p := range []string{"/v1/stream", "/v1/durable/x/stream"} {
			if st, code, b := apitest.OpenSSE(t, "GET", follower+p, "", "", ""); st != nil || code != 401 {
				t.Errorf("GET %s without a token: %d %s, want 401", p, code, b)
			}
		}
	})

	// A live stream on the third node, from the start, filtered to "t".
	tq := url.QueryEscape(`{"filters":[{"event_types":["t"]}]}`)
	live, _, _ := apitest.OpenSSE(t, "GET", other+"/v1/stream?after=0&query="+tq, reader, "", "")
	payloads := []string{`{"n":1.50,"big":12345678901234567890}`, `{"s": "é<&>", "deep": {"a": [1, 2.0, -3e2]}}`}

	t.Run("append through a follower, byte-exact", func(t *testing.T) {
		body := func(i int) string {
			return fmt.Sprintf(`{"events":[{"type":"t","payload":%s},{"type":"u","payload":{"i":%d}}],"idempotency_key":"k%d"}`, payloads[i], i, i)
		}
		for i := range payloads {
			r := apitest.Decode[apitest.AppendResult](t, apitest.MustOK(t, "POST", follower+"/v1/append", writer, body(i)))
			if r.Count != 2 || r.Last != r.First+1 || r.Duplicate {
				t.Fatalf("append %d: %+v", i, r)
			}
		}
		// A retry with the same key, on another node: the first outcome,
		// marked duplicate.
		r := apitest.Decode[apitest.AppendResult](t, apitest.MustOK(t, "POST", leader+"/v1/append", writer, body(0)))
		if !r.Duplicate || r.First != 1 {
			t.Fatalf("retried key: %+v", r)
		}
		q := apitest.Decode[apitest.QueryResult](t, apitest.MustOK(t, "POST", other+"/v1/query", reader,
			`{"query":{"filters":[{"event_types":["t"]}]},"consistency":"linearizable"}`))
		if len(q.Events) != 2 || !q.Complete || q.Version != 3 {
			t.Fatalf("query: %+v", q)
		}
		for i, ev := range q.Events {
			if string(ev.Payload) != payloads[i] {
				t.Errorf("payload %d came back as %s, sent %s", i, ev.Payload, payloads[i])
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		ctxQ := `{"filters":[{"event_types":["t"]}]}`
		big := `{"events":[{"type":"t","payload":{"x":"` + strings.Repeat("a", 8<<20) + `"}}]}`
		for _, tc := range []struct {
			name, path, body string
			status           int
			code             string
		}{
			{"invalid JSON", "/v1/append", `{"events":`, 400, "INVALID_ARGUMENT"},
			{"empty batch", "/v1/append", `{"events":[]}`, 400, "INVALID_ARGUMENT"},
			{"unknown field", "/v1/append", `{"events":[{"type":"t","payload":{}}],"evnts":[]}`, 400, "INVALID_ARGUMENT"},
			{"oversize", "/v1/append", big, 413, "RESOURCE_EXHAUSTED"},
			{"conflict", "/v1/append-if", `{"events":[{"type":"t","payload":{}}],"context":` + ctxQ + `,"expected_context_version":1}`, 409, "ABORTED"},
		} {
			code, b := apitest.Call(t, "POST", follower+tc.path, writer, tc.body)
			e := apitest.Decode[apitest.Error](t, b)
			if code != tc.status || e.Error.Code != tc.code {
				t.Errorf("%s: %d %.300s, want %d %s", tc.name, code, b, tc.status, tc.code)
			}
			if tc.name == "conflict" && (e.Expected == nil || *e.Expected != 1 || e.Actual == nil || *e.Actual != 3) {
				t.Errorf("conflict without both versions: %s", b)
			}
		}
		r := apitest.Decode[apitest.AppendResult](t, apitest.MustOK(t, "POST", follower+"/v1/append-if", writer,
			`{"events":[{"type":"t","payload":{"if":true}}],"context":`+ctxQ+`,"expected_context_version":3}`))
		if r.First != 5 {
			t.Fatalf("append-if: %+v", r)
		}
	})

	t.Run("live stream resumed by position on another node", func(t *testing.T) {
		recs, lastID := live.Records(t, 5)
		if got := seqs(recs); !slices.Equal(got, []uint64{1, 3, 5}) {
			t.Fatalf("live stream: %v", got)
		}
		for i, p := range payloads {
			if string(recs[i].Payload) != p {
				t.Errorf("streamed payload %d: %s, sent %s", i, recs[i].Payload, p)
			}
		}
		live.Close()
		apitest.MustOK(t, "POST", leader+"/v1/append", writer, `{"events":[{"type":"t","payload":{"away":1}},{"type":"u","payload":{}}]}`) // 6, 7
		resumed, _, _ := apitest.OpenSSE(t, "GET", follower+"/v1/stream?query="+tq, reader, lastID, "")
		apitest.MustOK(t, "POST", other+"/v1/append", writer, `{"events":[{"type":"t","payload":{"back":1}}]}`) // 8
		more, _ := resumed.Records(t, 8)
		if got := seqs(more); !slices.Equal(got, []uint64{6, 8}) {
			t.Fatalf("resumed after %s: %v, want [6 8] (no gap, no duplicate)", lastID, got)
		}
		resumed.Close()
	})

	t.Run("durable stream cursor advances across nodes", func(t *testing.T) {
		path := "/v1/durable/billing/stream?query=" + tq
		d1, _, _ := apitest.OpenSSE(t, "GET", follower+path, reader, "", "")
		first, _ := d1.Records(t, 8)
		if got := seqs(first); !slices.Equal(got, []uint64{1, 3, 5, 6, 8}) {
			t.Fatalf("durable replay: %v", got)
		}
		if st, code, b := apitest.OpenSSE(t, "GET", other+path, reader, "", ""); st != nil || code != http.StatusConflict {
			t.Fatalf("second subscriber of a held name: %d %s, want 409", code, b)
		}
		d1.Close()
		apitest.MustOK(t, "POST", follower+"/v1/append", writer, `{"events":[{"type":"t","payload":{"after":"cursor"}}]}`) // 9
		var d2 *apitest.Stream
		waitFor(t, 30*time.Second, func() bool {
			var code int
			var b []byte
			d2, code, b = apitest.OpenSSE(t, "GET", other+path, reader, "", "")
			if d2 == nil && code != http.StatusConflict {
				t.Fatalf("resubscribe: %d %s", code, b)
			}
			return d2 != nil
		}, func() string { return "the name to be released after the client went away" })
		next, _ := d2.Records(t, 9)
		if got := seqs(next); !slices.Equal(got, []uint64{9}) {
			t.Fatalf("after the cursor: %v, want [9]", got)
		}
		d2.Close()
	})

	t.Run("admin", func(t *testing.T) {
		j := apitest.Decode[map[string]any](t, apitest.MustOK(t, "POST", other+"/v1/admin/join", admin,
			fmt.Sprintf(`{"addr":%q}`, c.Node(li).GossipAddr())))
		if n, _ := j["contacted"].(float64); n < 1 {
			t.Fatalf("join: %v", j)
		}
		tr := apitest.Decode[map[string]any](t, apitest.MustOK(t, "POST", leader+"/v1/admin/transfer-leadership", admin,
			fmt.Sprintf(`{"node_id":%q}`, c.Node(fi).ID())))
		if tr["new_leader_id"] != c.Node(fi).ID() {
			t.Fatalf("transfer-leadership: %v", tr)
		}
		// The old leader leaves; the new one removes the third node.
		apitest.MustOK(t, "POST", leader+"/v1/admin/leave", admin, "")
		apitest.MustOK(t, "POST", follower+"/v1/admin/remove", admin, fmt.Sprintf(`{"node_id":%q}`, c.Node(oi).ID()))
		ms := apitest.Decode[map[string][]map[string]any](t, apitest.MustOK(t, "GET", follower+"/v1/members", admin, ""))
		if len(ms["members"]) != 1 || ms["members"][0]["id"] != c.Node(fi).ID() {
			t.Fatalf("members after leave and remove: %v", ms)
		}
	})
}

func seqs(recs []apitest.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.SequenceNumber
	}
	return out
}
