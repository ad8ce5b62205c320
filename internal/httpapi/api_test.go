package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/httpapi"
	"github.com/factstr/factstr-go/internal/httpapi/apitest"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

func TestPayloadsAreByteExact(t *testing.T) {
	n := startNode(t, nil, nil)
	payloads := []string{
		`{"n":1.50,"big":12345678901234567890}`,
		`{"n": 1.50, "s": "<&>\u00e9", "x": [1e3, -0.0]}`,
		"{\n  \"multi\": \"line\",\n  \"v\": 10.000\n}",
	}
	for i, p := range payloads {
		body := fmt.Sprintf(`{"events":[{"type":"t","payload":%s}]}`, p)
		res := decode[map[string]any](t, mustOK(t, "POST", n.url+"/v1/append", "", body))
		if res["first_sequence_number"] != float64(i+1) || res["committed_count"] != float64(1) || res["duplicate"] != false {
			t.Fatalf("append %d: %v", i, res)
		}
	}
	st, _, _ := openSSE(t, "GET", n.url+"/v1/stream?after=0", "", "", "")
	q := decode[queryResult](t, mustOK(t, "POST", n.url+"/v1/query", "", `{}`))
	if len(q.Events) != len(payloads) || !q.Complete || q.LastReturned != 3 || q.Version != 3 {
		t.Fatalf("query: %+v", q)
	}
	for i, ev := range q.Events {
		if string(ev.Payload) != payloads[i] {
			t.Errorf("query payload %d = %s, want %s", i, ev.Payload, payloads[i])
		}
		if ev.OccurredAt.IsZero() || ev.Type != "t" || ev.SequenceNumber != uint64(i+1) {
			t.Errorf("record %d: %+v", i, ev)
		}
	}
	// The stream carries them unchanged too, line breaks included.
	var got []record
	for len(got) < len(payloads) {
		ev := st.Next(t)
		if ev.Name != "batch" {
			continue
		}
		b := decode[batch](t, []byte(ev.Data))
		if ev.ID != strconv.FormatUint(b.Events[len(b.Events)-1].SequenceNumber, 10) {
			t.Fatalf("batch id %q, events %+v", ev.ID, b.Events)
		}
		got = append(got, b.Events...)
	}
	for i, ev := range got {
		if string(ev.Payload) != payloads[i] {
			t.Errorf("streamed payload %d = %q, want %q", i, ev.Payload, payloads[i])
		}
	}
}

// TestQueryPastTheBoundIsIncomplete: a result over the node's query bound
// answers 200 with what fits and "complete":false; querying on from
// last_returned_sequence_number collects every event exactly once.
func TestQueryPastTheBoundIsIncomplete(t *testing.T) {
	limits := contract.DefaultLimits
	limits.MaxQueryBytes = 200 // about five events of these
	n := startNode(t, nil, nil, memstore.WithLimits(limits))
	for i := 1; i <= 12; i++ {
		mustOK(t, "POST", n.url+"/v1/append", "", fmt.Sprintf(`{"events":[{"type":"t","payload":{"i":%d}}]}`, i))
	}
	var got []uint64
	after, pages := uint64(0), 0
	for {
		q := decode[queryResult](t, mustOK(t, "POST", n.url+"/v1/query", "", fmt.Sprintf(`{"query":{"min_sequence_number":%d}}`, after)))
		pages++
		for _, ev := range q.Events {
			got = append(got, ev.SequenceNumber)
		}
		if q.Version != 12 || len(q.Events) == 0 || q.LastReturned != q.Events[len(q.Events)-1].SequenceNumber {
			t.Fatalf("page %d: %+v", pages, q)
		}
		if q.Complete {
			break
		}
		if pages > 12 {
			t.Fatal("no complete page")
		}
		after = q.LastReturned
	}
	if pages < 3 || fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10 11 12]" {
		t.Fatalf("%d pages, events %v", pages, got)
	}
}

func TestErrorsHaveTheirHTTPStatus(t *testing.T) {
	n := startNode(t, nil, func(c *httpapi.Config) { c.MaxBodyBytes = 4096 })
	mustOK(t, "POST", n.url+"/v1/append", "", `{"events":[{"type":"order","payload":{"id":1}}]}`)
	ctxQ := `{"filters":[{"event_types":["order"]}]}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"invalid JSON", "POST", "/v1/append", `{"events":[`, 400, "INVALID_ARGUMENT"},
		{"two values", "POST", "/v1/append", `{"events":[]} {}`, 400, "INVALID_ARGUMENT"},
		{"empty body", "POST", "/v1/append", ``, 400, "INVALID_ARGUMENT"},
		{"empty batch", "POST", "/v1/append", `{"events":[]}`, 400, "INVALID_ARGUMENT"},
		{"unknown field", "POST", "/v1/append", `{"events":[{"type":"t","payload":{}}],"extra":1}`, 400, "INVALID_ARGUMENT"},
		{"unknown field in a filter", "POST", "/v1/query", `{"query":{"filters":[{"types":["a"]}]}}`, 400, "INVALID_ARGUMENT"},
		{"negative version", "POST", "/v1/append-if", `{"events":[{"type":"t","payload":{}}],"expected_context_version":-1}`, 400, "INVALID_ARGUMENT"},
		{"payload not JSON object", "POST", "/v1/append", `{"events":[{"type":"t"}]}`, 400, "INVALID_ARGUMENT"},
		{"bad consistency", "POST", "/v1/query", `{"consistency":"eventual"}`, 400, "INVALID_ARGUMENT"},
		{"oversize", "POST", "/v1/append", `{"events":[{"type":"t","payload":{"x":"` + strings.Repeat("a", 5000) + `"}}]}`, 413, "RESOURCE_EXHAUSTED"},
		{"stream: unknown parameter", "GET", "/v1/stream?from=3", ``, 400, "INVALID_ARGUMENT"},
		{"stream: bad after", "GET", "/v1/stream?after=-1", ``, 400, "INVALID_ARGUMENT"},
		{"stream: bad query", "GET", "/v1/stream?query=" + url.QueryEscape(`{"filters":[{"event_types":"a"}]}`), ``, 400, "INVALID_ARGUMENT"},
		{"stream: long URL", "GET", "/v1/stream?query=" + strings.Repeat("a", httpapi.DefaultMaxQueryString+1), ``, 414, "INVALID_ARGUMENT"},
		{"durable: invalid name", "GET", "/v1/durable/" + strings.Repeat("n", 300) + "/stream", ``, 400, "INVALID_ARGUMENT"},
		{"conflict", "POST", "/v1/append-if", `{"events":[{"type":"order","payload":{"id":2}}],"context":` + ctxQ + `,"expected_context_version":0}`, 409, "ABORTED"},
		{"admin join without addr", "POST", "/v1/admin/join", `{}`, 400, "INVALID_ARGUMENT"},
		{"admin join unknown field", "POST", "/v1/admin/join", `{"address":"x"}`, 400, "INVALID_ARGUMENT"},
		{"unimplemented", "GET", "/v1/members", ``, 501, "UNIMPLEMENTED"},
		{"no route", "GET", "/v1/nothing", ``, 404, "NOT_FOUND"},
		{"wrong method", "GET", "/v1/append", ``, 405, "UNIMPLEMENTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := call(t, tc.method, n.url+tc.path, "", tc.body)
			e := decode[apiErr](t, b)
			if code != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("%d %s, want %d %s", code, b, tc.status, tc.code)
			}
			if want, ok := map[string]string{"empty batch": "EMPTY_APPEND", "conflict": "CONTEXT_VERSION_CONFLICT", "unknown field": ""}[tc.name]; ok && e.Error.Reason != want {
				t.Fatalf("reason %q, want %q: %s", e.Error.Reason, want, b)
			}
			if tc.name == "conflict" && (e.Expected == nil || *e.Expected != 0 || e.Actual == nil || *e.Actual != 1) {
				t.Fatalf("conflict body without both versions: %s", b)
			}
		})
	}
	// The conflict resolved: the expected version is the actual one.
	mustOK(t, "POST", n.url+"/v1/append-if", "", `{"events":[{"type":"order","payload":{"id":2}}],"context":`+ctxQ+`,"expected_context_version":1}`)
}

func TestTokensAndRoles(t *testing.T) {
	const reader, writer, admin = "reader-token-0123456789", "writer-token-0123456789", "admin-token-0123456789"
	n := startNode(t, []server.Credential{{Name: "r", Token: reader, Role: "reader"}, {Name: "w", Token: writer, Role: "writer"}, {Name: "a", Token: admin, Role: "admin"}}, nil)
	appendBody := `{"events":[{"type":"t","payload":{}}]}`
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"append, no token", "POST", "/v1/append", "", appendBody, 401},
		{"append, unknown token", "POST", "/v1/append", "nope-nope-nope-nope", appendBody, 401},
		{"append, reader", "POST", "/v1/append", reader, appendBody, 403},
		{"append, writer", "POST", "/v1/append", writer, appendBody, 200},
		{"query, reader", "POST", "/v1/query", reader, `{}`, 200},
		{"query, no token", "POST", "/v1/query", "", `{}`, 401},
		{"status, reader", "GET", "/v1/status", reader, ``, 200},
		{"join, writer", "POST", "/v1/admin/join", writer, `{"addr":"127.0.0.1:1"}`, 403},
		{"join, admin", "POST", "/v1/admin/join", admin, `{"addr":"127.0.0.1:1"}`, 200},
		{"stream, no token", "GET", "/v1/stream", "", ``, 401},
		{"durable, no token", "GET", "/v1/durable/d/stream", "", ``, 401},
		{"openapi, no token", "GET", "/v1/openapi.json", "", ``, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var b []byte
			if strings.Contains(tc.path, "stream") {
				var st *apitest.Stream
				st, code, b = openSSE(t, tc.method, n.url+tc.path, tc.token, "", "")
				if st != nil {
					st.Close()
				}
			} else {
				code, b = call(t, tc.method, n.url+tc.path, tc.token, tc.body)
			}
			if code != tc.status {
				t.Fatalf("%d %s, want %d", code, b, tc.status)
			}
		})
	}
}

// TestCrossSiteBrowserWritesAreRefused: a page of another origin cannot
// make the visitor's browser append to a node (no CORS, no CSRF); the
// same origin and non-browser clients can.
func TestCrossSiteBrowserWritesAreRefused(t *testing.T) {
	n := startNode(t, nil, nil)
	body := `{"events":[{"type":"t","payload":{}}]}`
	for _, tc := range []struct {
		site   string
		status int
	}{{"cross-site", 403}, {"same-origin", 200}, {"", 200}} {
		req, err := http.NewRequest("POST", n.url+"/v1/append", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Sec-Fetch-Site %q: %d, want %d", tc.site, resp.StatusCode, tc.status)
		}
	}
}

// TestLoopbackServesOnlyLoopbackHosts: a name rebound to 127.0.0.1 by an
// attacker's DNS does not reach a loopback node.
func TestLoopbackServesOnlyLoopbackHosts(t *testing.T) {
	n := startNode(t, nil, func(c *httpapi.Config) { c.LoopbackHostsOnly = true })
	for _, tc := range []struct {
		host   string
		status int
	}{{"", 200}, {"localhost:7403", 200}, {"[::1]:7403", 200}, {"127.0.0.2", 200}, {"evil.example:7403", 403}, {"10.0.0.1:7403", 403}} {
		req, err := http.NewRequest("GET", n.url+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %q: %d, want %d", tc.host, resp.StatusCode, tc.status)
		}
	}
}

// TestCloseStreamsTellsClientsToResume: at shutdown a stream ends with an
// UNAVAILABLE error event instead of holding the server open.
func TestCloseStreamsTellsClientsToResume(t *testing.T) {
	n := startNode(t, nil, nil)
	st, _, _ := openSSE(t, "GET", n.url+"/v1/stream", "", "", "")
	if ev := st.Next(t); ev.Name != "subscribed" {
		t.Fatalf("first event %+v", ev)
	}
	n.api.CloseStreams()
	ev := st.Next(t)
	if e := decode[apiErr](t, []byte(ev.Data)); ev.Name != "error" || e.Error.Code != "UNAVAILABLE" {
		t.Fatalf("after CloseStreams: %+v", ev)
	}
	for timeout := time.After(apitest.Wait); ; {
		select {
		case _, ok := <-st.Events:
			if !ok {
				return // the stream ended
			}
		case <-timeout:
			t.Fatal("the stream stayed open after CloseStreams")
		}
	}
}

func TestStatusIsTheProtoAsJSON(t *testing.T) {
	n := startNode(t, nil, nil)
	b := mustOK(t, "GET", n.url+"/v1/status", "", "")
	// Numbers past 2^53 stay exact, zero values are present, a oneof-free
	// message keeps every field, and strings are not HTML-escaped.
	for _, want := range []string{`"head_sequence_number":9223372036854775809`, `"cluster_id":""`, `"commit_index":0`,
		`"healthy":true`, `"lag":0`, `"warnings":["a <warning> & more"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status %s lacks %s", b, want)
		}
	}
}

// TestStreamResumesByPosition: a stream resumed with Last-Event-ID (or
// after) delivers what was committed while it was away, then live, with
// no gap and no duplicate.
func TestStreamResumesByPosition(t *testing.T) {
	n := startNode(t, nil, func(c *httpapi.Config) { c.KeepAlive = 50 * time.Millisecond })
	appendN := func(from, to int) {
		for i := from; i <= to; i++ {
			mustOK(t, "POST", n.url+"/v1/append", "", fmt.Sprintf(`{"events":[{"type":"t","payload":{"i":%d}},{"type":"other","payload":{"i":%d}}]}`, i, i))
		}
	}
	q := url.QueryEscape(`{"filters":[{"event_types":["t"]}]}`)
	appendN(1, 3)
	st, _, _ := openSSE(t, "GET", n.url+"/v1/stream?after=0&query="+q, "", "", "")
	var seen []uint64
	lastID := ""
	read := func(st *apitest.Stream, upTo uint64) {
		for len(seen) == 0 || seen[len(seen)-1] < upTo {
			ev := st.Next(t)
			if ev.Name != "batch" {
				continue
			}
			b := decode[batch](t, []byte(ev.Data))
			for _, r := range b.Events {
				if r.Type != "t" {
					t.Fatalf("filtered stream delivered %+v", r)
				}
				seen = append(seen, r.SequenceNumber)
			}
			lastID = ev.ID
		}
	}
	read(st, 5)
	// A keepalive comment arrives while nothing is committed.
	for deadline := time.After(apitest.Wait); ; {
		select {
		case ev := <-st.Events:
			if ev.Name == ":" && ev.Data == "keepalive" {
				goto live
			}
		case <-deadline:
			t.Fatal("no keepalive comment")
		}
	}
live:
	appendN(4, 4)
	read(st, 7)
	st.Close()
	appendN(5, 6) // committed while no one listens
	st2, _, _ := openSSE(t, "GET", n.url+"/v1/stream?after=1&query="+q, "", lastID, "")
	appendN(7, 7)
	read(st2, 13)
	st2.Close()
	// The POST form, resumed by "after" in the body.
	st3, _, _ := openSSE(t, "POST", n.url+"/v1/stream", "", "", `{"query":{"filters":[{"event_types":["t"]}]},"after":`+lastID+`}`)
	appendN(8, 8)
	read(st3, 15)
	want := []uint64{1, 3, 5, 7, 9, 11, 13, 15}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v (no gap, no duplicate)", seen, want)
	}
}

// TestDurableStreamAdvancesItsCursor: what a durable SSE stream delivered
// is not delivered again to its next subscriber; a held name is 409.
func TestDurableStreamAdvancesItsCursor(t *testing.T) {
	n := startNode(t, nil, nil)
	for i := 1; i <= 3; i++ {
		mustOK(t, "POST", n.url+"/v1/append", "", fmt.Sprintf(`{"events":[{"type":"t","payload":{"i":%d}}]}`, i))
	}
	path := n.url + "/v1/durable/billing/stream?query=" + url.QueryEscape(`{"filters":[{"event_types":["t"]}]}`)
	st, _, _ := openSSE(t, "GET", path, "", "", "")
	var got []uint64
	for len(got) < 3 {
		if ev := st.Next(t); ev.Name == "batch" {
			for _, r := range decode[batch](t, []byte(ev.Data)).Events {
				got = append(got, r.SequenceNumber)
			}
		}
	}
	code, b := call(t, "GET", path, "", "")
	if e := decode[apiErr](t, b); code != http.StatusConflict || e.Error.Code != "FAILED_PRECONDITION" {
		t.Fatalf("second subscriber: %d %s, want 409", code, b)
	}
	st.Close()
	mustOK(t, "POST", n.url+"/v1/append", "", `{"events":[{"type":"t","payload":{"i":4}}]}`)
	// The name is released once the server sees the client gone.
	var st2 *apitest.Stream
	for deadline := time.Now().Add(apitest.Wait); st2 == nil; {
		var code int
		st2, code, b = openSSE(t, "GET", path, "", "", "")
		if st2 == nil && (code != http.StatusConflict || time.Now().After(deadline)) {
			t.Fatalf("resubscribe: %d %s", code, b)
		}
		if st2 == nil {
			time.Sleep(20 * time.Millisecond) // polling the name's release; no signal reaches the HTTP client
		}
	}
	for {
		ev := st2.Next(t)
		if ev.Name != "batch" {
			continue
		}
		rs := decode[batch](t, []byte(ev.Data)).Events
		if rs[0].SequenceNumber != 4 {
			t.Fatalf("after the cursor: got %+v, want sequence number 4 first", rs)
		}
		break
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("first subscriber got %v", got)
	}
}

// TestStalledClientReleasesItsStream: a client that stops reading without
// closing its connection loses its durable stream after the write stall
// timeout, so the name is free again (the server has no write timeout).
func TestStalledClientReleasesItsStream(t *testing.T) {
	n := startNode(t, nil, func(c *httpapi.Config) { c.WriteStallTimeout = 300 * time.Millisecond })
	big := strings.Repeat("a", 512<<10)
	for range 24 { // 12 MiB: more than the socket buffers hold
		mustOK(t, "POST", n.url+"/v1/append", "", `{"events":[{"type":"t","payload":{"x":"`+big+`"}}]}`)
	}
	u, err := url.Parse(n.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := fmt.Fprintf(conn, "GET /v1/durable/stalled/stream HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host); err != nil {
		t.Fatal(err)
	}
	// Read until the stream delivers (a durable stream delivers only while
	// it holds its name; its replay comes before "subscribed"), then read
	// nothing more.
	_ = conn.SetReadDeadline(time.Now().Add(apitest.Wait))
	var seen []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(seen), "event: batch") && !strings.Contains(string(seen), "event: subscribed") {
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("the stalled client's stream delivered nothing: %v\n%.300s", err, seen)
		}
		seen = append(seen, buf[:k]...)
	}
	// Until the server gives up on the client, the name is held (409); then
	// another subscriber gets it.
	deadline := time.Now().Add(apitest.Wait)
	for {
		st, code, b := openSSE(t, "GET", n.url+"/v1/durable/stalled/stream", "", "", "")
		if st != nil {
			st.Close()
			break
		}
		if code != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("name still not free: %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond) // polling: the release is not signalled to other clients
	}
}

// TestOpenAPIListsExactlyTheServedRoutes compares the document's paths and
// methods with the route table, then asks the server: every documented
// operation is routed (not 404/405), and every other method of a
// documented path is 405.
func TestOpenAPIListsExactlyTheServedRoutes(t *testing.T) {
	n := startNode(t, nil, nil)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(mustOK(t, "GET", n.url+"/v1/openapi.json", "", ""), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "post", "put", "delete", "patch", "head", "options":
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	api, err := httpapi.New(httpapi.Config{Conn: dummyConn{}})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range api.Routes() {
		served[r.Method+" "+r.Path] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not in openapi.json: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.json but not served: %s", k)
		}
	}
	for p, ops := range doc.Paths {
		path := strings.ReplaceAll(p, "{name}", "x")
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			_, isDoc := ops[strings.ToLower(m)]
			code := routedStatus(t, m, n.url+path)
			switch {
			case isDoc && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed):
				t.Errorf("%s %s documented, answered %d", m, p, code)
			case !isDoc && code != http.StatusMethodNotAllowed:
				t.Errorf("%s %s not documented, answered %d, want 405", m, p, code)
			}
		}
	}
}

// TestRoutesNameRealMethods: the gRPC method of each route exists, so
// its access rule (internal/server/access.go) is the route's.
func TestRoutesNameRealMethods(t *testing.T) {
	api, err := httpapi.New(httpapi.Config{Conn: dummyConn{}})
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{factstrv1.EventStoreService_ServiceDesc, factstrv1.AdminService_ServiceDesc} {
		for _, m := range sd.Methods {
			known["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, m := range sd.Streams {
			known["/"+sd.ServiceName+"/"+m.StreamName] = true
		}
	}
	for _, r := range api.Routes() {
		if r.GRPCMethod != "" && !known[r.GRPCMethod] {
			t.Errorf("%s %s names %s, which no service has", r.Method, r.Path, r.GRPCMethod)
		}
	}
}

// routedStatus is the status of a request with an empty object body
// (streams are closed once their status is known).
func routedStatus(t *testing.T, method, u string) int {
	t.Helper()
	body := ""
	if method != "GET" {
		body = "{}"
	}
	if strings.Contains(u, "stream") && (method == "GET" || method == "POST") {
		st, code, _ := openSSE(t, method, u, "", "", body)
		if st != nil {
			st.Close()
		}
		return code
	}
	code, b := call(t, method, u, "", body)
	if code == http.StatusNotFound && strings.Contains(string(b), "DURABLE_NOT_FOUND") {
		// Routed: the store answered that the name does not exist.
		return http.StatusOK
	}
	return code
}

// TestDurableNamesAreManaged: a name created at the end of the log through
// the stream's start parameter is listed and shown with its cursor, refuses
// a reset while held unless forced, and is gone after a delete.
func TestDurableNamesAreManaged(t *testing.T) {
	n := startNode(t, nil, nil)
	for i := 1; i <= 2; i++ {
		mustOK(t, "POST", n.url+"/v1/append", "", fmt.Sprintf(`{"events":[{"type":"t","payload":{"i":%d}}]}`, i))
	}
	if code, b := call(t, "GET", n.url+"/v1/durable/proj/stream?start=soon", "", ""); code != http.StatusBadRequest {
		t.Fatalf("start=soon: %d %s, want 400", code, b)
	}
	st, _, b := openSSE(t, "GET", n.url+"/v1/durable/proj/stream?start=end", "", "", "")
	if st == nil {
		t.Fatalf("durable stream: %s", b)
	}
	for ev := st.Next(t); ev.Name != "subscribed"; ev = st.Next(t) {
	}
	type stream struct {
		Name  string
		Query json.RawMessage
		Start struct {
			Kind  string
			After uint64
		}
		Cursor     uint64
		Head       uint64
		LagEvents  uint64  `json:"lag_events"`
		LagSeconds float64 `json:"lag_seconds"`
		Holder     string
		CreatedAt  string          `json:"created_at"`
		LastAckAt  string          `json:"last_ack_at"`
		Failure    json.RawMessage // absent: stop
		Parked     uint64
	}
	list := decode[struct{ Streams []stream }](t, mustOK(t, "GET", n.url+"/v1/durable", "", ""))
	if len(list.Streams) != 1 || list.Streams[0].Name != "proj" || list.Streams[0].Cursor != 2 || list.Streams[0].Head != 2 ||
		list.Streams[0].Holder == "" || list.Streams[0].Start.Kind != "DURABLE_START_KIND_END" || list.Streams[0].LagSeconds != 0 {
		t.Fatalf("list: %+v, want proj at cursor 2 (started at the end), held, no lag", list.Streams)
	}
	code, b := call(t, "POST", n.url+"/v1/durable/proj/reset", "", `{"to":{"kind":"DURABLE_START_KIND_BEGINNING"}}`)
	if e := decode[apiErr](t, b); code != http.StatusConflict || e.Error.Code != "FAILED_PRECONDITION" {
		t.Fatalf("reset of a held name: %d %s, want 409", code, b)
	}
	got := decode[struct{ Stream stream }](t, mustOK(t, "POST", n.url+"/v1/durable/proj/reset", "", `{"to":{"kind":"DURABLE_START_KIND_BEGINNING"},"force":true}`))
	if got.Stream.Cursor != 0 || got.Stream.Holder != "" || got.Stream.LagSeconds <= 0 {
		t.Fatalf("forced reset: %+v, want cursor 0, no holder and the lag time of event 1", got.Stream)
	}
	st.Close()
	one := decode[struct{ Stream stream }](t, mustOK(t, "GET", n.url+"/v1/durable/proj", "", ""))
	if one.Stream.Name != "proj" || one.Stream.Cursor != 0 {
		t.Fatalf("show: %+v", one.Stream)
	}
	mustOK(t, "DELETE", n.url+"/v1/durable/proj", "", "")
	code, b = call(t, "GET", n.url+"/v1/durable/proj", "", "")
	if e := decode[apiErr](t, b); code != http.StatusNotFound || e.Error.Code != "NOT_FOUND" {
		t.Fatalf("show after delete: %d %s, want 404", code, b)
	}
	if code, b := call(t, "DELETE", n.url+"/v1/durable/proj?force=maybe", "", ""); code != http.StatusBadRequest {
		t.Fatalf("force=maybe: %d %s, want 400", code, b)
	}
}
