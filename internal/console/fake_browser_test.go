package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/factstr/factstr-go/internal/console"
)

// fakeAPI answers the console's routes with canned JSON shaped as the HTTP
// API spec says (proto field names, uint64 as strings, zero values left
// out), so the page's JavaScript is checked without a cluster: exact
// numbers and key order, auth messages, a conflict, a resumed stream.
type fakeAPI struct {
	t     *testing.T
	token string
	done  chan struct{}

	mu       sync.Mutex
	bodies   map[string][]string // request bodies by path
	streams  int
	resumeAt []string // Last-Event-ID of each stream request
	durable  bool     // serve /v1/durable (else 404, as a node without it)
}

const fakeStatus = `{"cluster_id":"c-9","node_id":"n1","leader_id":"n2","term":"7","commit_index":"42","applied_index":"41",
"head_sequence_number":"12345678901234567890","members":[
{"id":"n1","raft_addr":"127.0.0.1:7001","grpc_addr":"127.0.0.1:7101","suffrage":"voter","state":"follower","applied_index":"41","commit_index":"42","term":"7","healthy":true,"gossip_state":"alive"},
{"id":"n2","raft_addr":"127.0.0.1:7002","grpc_addr":"127.0.0.1:7102","suffrage":"voter","state":"leader","applied_index":"41","commit_index":"42","term":"7","healthy":true,"gossip_state":"alive"},
{"id":"n3","raft_addr":"127.0.0.1:7003","suffrage":"voter","state":"unreachable"},
{"id":"n4","raft_addr":"127.0.0.1:7004","grpc_addr":"127.0.0.1:7104","suffrage":"nonvoter","state":"follower","applied_index":"1","commit_index":"42","term":"7","lag":"5000","healthy":true}],
"warnings":["4 voters: an even number of voters (server's warning)"]}`

// The query form must send the predicate byte for byte (a float64 round trip
// would change the number).
const wantQueryBody = `{"query":{"filters":[{"event_types":["opened","closed"],"payload_predicates":[{"n":12345678901234567890}]}],"min_sequence_number":3},"consistency":"local"}`

const fakeQueryResult = `{"events":[{"sequence_number":"4","occurred_at":"2026-12-06T04:00:00.123456789Z","type":"opened",
"payload":{"n":12345678901234567890,"2":"second key","1":"first key","nested":{"list":[1,2.50,{}]}}}],
"last_returned_sequence_number":"4","current_context_version":"9","complete":true}`

const wantAppendBody = `{"events":[{"type":"deposited","payload":{"amount":12345678901234567890}}],"idempotency_key":"k-1"}`

func (f *fakeAPI) record(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies[r.URL.Path] = append(f.bodies[r.URL.Path], string(b))
	return string(b)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "Bearer "+f.token {
		return true
	}
	writeJSON(w, 401, `{"error":{"code":"UNAUTHENTICATED","message":"missing or invalid token"}}`)
	return false
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	ui := console.Handler()
	mux.Handle("GET /{$}", ui)
	mux.Handle("GET "+console.AssetPrefix, ui)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if f.authorized(w, r) {
			writeJSON(w, 200, fakeStatus)
		}
	})
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, `{"error":{"code":"PERMISSION_DENIED","message":"admin role needed"}}`)
	})
	mux.HandleFunc("POST /v1/query", func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r) {
			return
		}
		if b := f.record(r); b != wantQueryBody {
			writeJSON(w, 400, fmt.Sprintf(`{"error":{"code":"INVALID_ARGUMENT","message":%q}}`, "fake: unexpected body "+b))
			return
		}
		writeJSON(w, 200, fakeQueryResult)
	})
	mux.HandleFunc("POST /v1/append", func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r) {
			return
		}
		if b := f.record(r); b != wantAppendBody {
			writeJSON(w, 400, fmt.Sprintf(`{"error":{"code":"INVALID_ARGUMENT","message":%q}}`, "fake: unexpected body "+b))
			return
		}
		writeJSON(w, 200, `{"first_sequence_number":"10","last_sequence_number":"10","committed_count":1,"duplicate":false}`)
	})
	mux.HandleFunc("POST /v1/append-if", func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(w, r) {
			return
		}
		f.record(r)
		writeJSON(w, 409, `{"error":{"code":"ABORTED","message":"context version 5, expected 2"},"expected_context_version":"2","actual_context_version":"5"}`)
	})
	mux.HandleFunc("GET /v1/durable", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		on := f.durable
		f.mu.Unlock()
		if !on {
			writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"no such route"}}`)
			return
		}
		writeJSON(w, 200, `{"streams":[{"name":"billing","cursor":12345678901234567890,"lag":3,"holder":"n2","parked":false},{"name":"audit","cursor":0}]}`)
	})
	mux.HandleFunc("GET /v1/durable/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fmt.Sprintf(`{"name":%q,"query":{"filters":[{"event_types":["deposited"]}]},"cursor":12345678901234567890}`, r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/stream", f.stream)
	return mux
}

// stream serves one batch and ends the first stream, so the page must
// reconnect and resume after that batch with Last-Event-ID; the second
// stream stays open.
func (f *fakeAPI) stream(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	f.mu.Lock()
	f.streams++
	n := f.streams
	f.resumeAt = append(f.resumeAt, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	if q := r.URL.Query().Get("query"); q != `{"filters":[{"event_types":["opened"]}]}` {
		writeJSON(w, 400, fmt.Sprintf(`{"error":{"code":"INVALID_ARGUMENT","message":%q}}`, "fake: unexpected query "+q))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	seq := 5 + n
	// Lines split over two writes and a keepalive comment check the parser.
	fmt.Fprintf(w, "event: subscribed\ndata: {\"subscription_id\":\"s%d\",\"head\":\"%d\"}\n\n: keepalive\n\nid: %d\nevent: batch\n", n, seq-1, seq)
	fl.Flush()
	fmt.Fprintf(w, "data: {\"events\":[{\"sequence_number\":\"%d\",\"occurred_at\":\"2026-12-06T04:00:0%dZ\",\"type\":\"opened\",\"payload\":{\"stream\":%d}}]}\n\n", seq, n, n)
	fl.Flush()
	if n > 1 {
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
	}
}

func TestConsoleAgainstFakeAPI(t *testing.T) {
	f := &fakeAPI{t: t, token: "s3cret", done: make(chan struct{}), bodies: map[string][]string{}}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(f.done) })
	p := openBrowser(t)

	const wait = 10 * time.Second
	p.do("open the console", chromedp.Navigate(srv.URL+"/"))

	// Without a token the node answers 401: the page says so.
	p.waitContains("#auth-message", "401 Unauthorized", wait)
	p.shot("unauthorized")
	p.set("token", "s3cret")
	p.click("token-save")
	p.waitText("#auth-message", "the auth message to go away", wait, func(s string) bool { return s == "" })

	// Overview: leader, exact uint64, the unreachable member, lag warning.
	p.waitContains("#ov-leader-id", "n2", wait)
	if got := p.text("#ov-head"); got != "12345678901234567890" {
		t.Errorf("head shows %q, want the exact uint64", got)
	}
	p.waitContains("#ov-member-count", "4 members, 3 reachable", wait)
	if got := p.text(`[data-testid="member-n3"] .m-state`); got != "unreachable" {
		t.Errorf("n3 state shows %q", got)
	}
	if got := p.eval(`document.querySelector('[data-testid="member-n2"]').className`); !strings.Contains(got, "leader") {
		t.Errorf("leader row class %q", got)
	}
	warnings := p.text("#ov-warnings")
	for _, w := range []string{"server's warning", "n3 is unreachable from n1", "n4 is 5000 entries behind the leader"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings %q lack %q", warnings, w)
		}
	}
	p.shot("overview")

	// Query: the request carries the predicate byte for byte; the result
	// keeps big numbers and key order.
	p.tab("query")
	p.set("q-types", "opened, closed")
	p.set("q-where", `{"n":12345678901234567890}`)
	p.set("q-min", "3")
	p.set("q-consistency", "local")
	p.click("q-run")
	p.waitContains("#q-context-version", "9", wait)
	if e := p.text("#q-error"); e != "" {
		t.Errorf("query error shown: %q", e)
	}
	if got := p.text("#q-last-returned"); got != "4" {
		t.Errorf("last returned shows %q", got)
	}
	events := p.text("#q-events tbody")
	for _, want := range []string{`"n": 12345678901234567890`, "2026-12-06T04:00:00.123456789Z", "opened", `2.50`} {
		if !strings.Contains(events, want) {
			t.Errorf("query result %q lacks %q", events, want)
		}
	}
	if i, j := strings.Index(events, `"2": "second key"`), strings.Index(events, `"1": "first key"`); i < 0 || j < 0 || i > j {
		t.Errorf("payload keys not in the server's order: %q", events)
	}
	p.shot("query")

	// A bad predicate is refused in the page with a reason.
	p.set("q-where", `[1,2]`)
	p.click("q-run")
	p.waitContains("#q-error", "a predicate is a JSON object", wait)

	// Live tail: the first stream ends after one batch; the page reconnects
	// with Last-Event-ID and shows the batch of the second stream.
	p.tab("tail")
	p.set("t-types", "opened")
	p.click("t-start")
	p.waitContains("#t-last-id", "7", 3*wait)
	p.waitContains("#t-state", "live (subscription s2", wait)
	tail := p.text("#t-events tbody")
	if !strings.Contains(tail, `"stream": 1`) || !strings.Contains(tail, `"stream": 2`) {
		t.Errorf("tail shows %q, want the batches of both streams", tail)
	}
	f.mu.Lock()
	resume := append([]string(nil), f.resumeAt...)
	f.mu.Unlock()
	if len(resume) < 2 || resume[0] != "" || resume[1] != "6" {
		t.Errorf("stream requests carried Last-Event-ID %q, want none then 6", resume)
	}
	p.shot("tail")
	p.click("t-stop")
	p.waitContains("#t-state", "stopped", wait)

	// Append, then a conditional append that conflicts.
	p.tab("append")
	p.set("a-type", "deposited")
	p.set("a-payload", `{"amount":12345678901234567890}`)
	p.set("a-idem", "k-1")
	p.click("a-submit")
	p.waitContains("#a-result", "Committed 1 event(s): sequence 10", wait)
	p.set("a-idem", "")
	p.click("a-if")
	p.set("a-ctx-types", "deposited")
	p.set("a-expected", "2")
	p.click("a-submit")
	p.waitContains("#a-conflict", "Expected context version 2, actual context version 5", wait)
	f.mu.Lock()
	ifBodies := append([]string(nil), f.bodies["/v1/append-if"]...)
	f.mu.Unlock()
	if want := `"context":{"filters":[{"event_types":["deposited"]}]},"expected_context_version":2}`; len(ifBodies) != 1 || !strings.Contains(ifBodies[0], want) {
		t.Errorf("append-if bodies %q, want one containing %s", ifBodies, want)
	}
	p.shot("append-conflict")

	// Durable consumers on a node without the route.
	p.tab("durable")
	p.waitContains("#d-message", "not available on this node", wait)
	p.shot("durable-unavailable")
	f.mu.Lock()
	f.durable = true
	f.mu.Unlock()
	p.click("d-refresh")
	p.waitContains("#d-message", "2 durable consumer(s)", wait)
	row := p.text(`[data-testid="durable-billing"]`)
	for _, want := range []string{"billing", "12345678901234567890", "n2", "false"} {
		if !strings.Contains(row, want) {
			t.Errorf("durable row %q lacks %q", row, want)
		}
	}
	if head := p.text("#d-list thead"); !strings.Contains(head, "cursor") || !strings.Contains(head, "holder") {
		t.Errorf("durable table header %q", head)
	}
	p.do("open billing", chromedp.Click(chromedp.CSS(`[data-testid="durable-billing"] button`)))
	p.waitContains("#d-detail", "\"cursor\": 12345678901234567890", wait)
	p.shot("durable")
}

// TestConsoleJSON checks the page's JSON reader and printer, which keep
// numbers and key order as the server sent them.
func TestConsoleJSON(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	p := openBrowser(t)
	p.do("open the console", chromedp.Navigate(srv.URL+"/"))
	tests := []struct {
		in, pretty string // pretty "" : the reader must refuse in
	}{
		{`{"n":12345678901234567890}`, "{\n  \"n\": 12345678901234567890\n}"},
		{`{"b":1,"a":[1e400,-0.0,2.50]}`, "{\n  \"b\": 1,\n  \"a\": [\n    1e400,\n    -0.0,\n    2.50\n  ]\n}"},
		{` { "s" : "a\"b,{[:" , "e":{ }, "l":[ ] } `, "{\n  \"s\": \"a\\\"b,{[:\",\n  \"e\": {},\n  \"l\": []\n}"},
		{`"\u00e9\\"`, `"\u00e9\\"`},
		{`[true,false,null]`, "[\n  true,\n  false,\n  null\n]"},
		{`{"__proto__":{"x":1}}`, "{\n  \"__proto__\": {\n    \"x\": 1\n  }\n}"},
		{`{"a":1,}`, ""},
		{`[1 2]`, ""},
		{`01`, ""},
		{`{"a":1} x`, ""},
		{`"open`, ""},
		{``, ""},
	}
	for _, tc := range tests {
		js := fmt.Sprintf(`(() => {
			const c = window.factstrConsole;
			try { c.parseJSON(%[1]q); } catch (e) { return "refused: " + e.message; }
			return c.pretty(c.rawOf(c.parseJSON("[" + %[1]q + "]"), 0));
		})()`, tc.in)
		got := p.eval(js)
		switch {
		case tc.pretty == "" && !strings.HasPrefix(got, "refused: invalid JSON"):
			t.Errorf("%q: accepted as %q, want refused", tc.in, got)
		case tc.pretty != "" && got != tc.pretty:
			t.Errorf("%q: printed\n%s\nwant\n%s", tc.in, got, tc.pretty)
		}
	}
	// The parsed value is usable: the key __proto__ is data, not a prototype.
	if got := p.eval(`(() => { const v = window.factstrConsole.parseJSON('{"__proto__":{"x":1},"n":5}'); return String(v.n) + "," + String(v.x); })()`); got != "5,undefined" {
		t.Errorf("parsed object: %q", got)
	}
}
