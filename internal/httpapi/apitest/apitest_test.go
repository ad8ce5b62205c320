package apitest_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/internal/httpapi"
	"github.com/factstr/factstr-go/internal/httpapi/apitest"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

// fakeT stands in for the *testing.T a helper gets, so that a test can
// watch a helper fail: Fatal records the message and ends the goroutine as
// testing.T's does.
type fakeT struct {
	testing.TB // nil: a method not overridden here panics
	failure    string
	cleanups   []func()
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Fatal(args ...any)         { f.failure = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeT) Fatalf(s string, a ...any) { f.failure = fmt.Sprintf(s, a...); runtime.Goexit() }
func (f *fakeT) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }

// try runs body as a test of its own and returns how it failed ("" if it
// did not), after running its cleanups.
func try(t *testing.T, body func(tb testing.TB)) string {
	t.Helper()
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	select {
	case <-done:
	case <-time.After(apitest.Wait + 10*time.Second):
		t.Fatal("the helper neither returned nor failed")
	}
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f.failure
}

func wantFailure(t *testing.T, failure, contains string) {
	t.Helper()
	if failure == "" {
		t.Fatalf("the helper passed; want it to fail with %q", contains)
	}
	if !strings.Contains(failure, contains) {
		t.Fatalf("the helper failed with %q, want %q in it", failure, contains)
	}
}

const token = "w-token"

// startAPI serves the real HTTP API (memstore behind the gRPC
// EventStoreService with the production codec and auth) on a loopback
// socket and returns its URL; only token may write.
func startAPI(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := server.AuthInterceptors(server.AuthConfig{Tokens: []server.Credential{{Name: "w", Token: token, Role: "writer"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{server.CodecOption()}, auth...)...)
	store := memstore.New()
	server.NewEventStore(store, log).Register(srv)
	pipe := httpapi.NewPipeListener()
	go func() { _ = srv.Serve(pipe) }()
	conn, err := pipe.Dial(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Conn: conn, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(api)
	hs.Config = httpapi.NewServer(api, log)
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		_ = conn.Close()
		srv.Stop()
		_ = pipe.Close()
		_ = store.Close()
	})
	return hs.URL
}

// TestCallsAgainstTheAPI: Call sends the token and the body, returns the
// server's status and body; MustOK passes a 200 and fails on anything
// else; Decode reads the API's real answers into the package's shapes,
// which fails if the API has a field they lack.
func TestCallsAgainstTheAPI(t *testing.T) {
	base := startAPI(t)

	// Without the token the API refuses; Call returns the refusal.
	code, b := apitest.Call(t, "POST", base+"/v1/append", "", `{"events":[{"type":"t","payload":{}}]}`)
	if code != http.StatusUnauthorized {
		t.Fatalf("append without a token: %d %s, want 401", code, b)
	}
	if e := apitest.Decode[apitest.Error](t, b); e.Error.Code != "UNAUTHENTICATED" || e.Error.Message == "" {
		t.Errorf("401 answer decoded to %+v", e)
	}

	res := apitest.Decode[apitest.AppendResult](t, apitest.MustOK(t, "POST", base+"/v1/append", token,
		`{"events":[{"type":"t","payload":{"a": 1.50}},{"type":"u","payload":{"b":2}}]}`))
	if res != (apitest.AppendResult{First: 1, Last: 2, Count: 2}) {
		t.Errorf("append answer decoded to %+v", res)
	}

	q := apitest.Decode[apitest.QueryResult](t, apitest.MustOK(t, "POST", base+"/v1/query", token, `{}`))
	if len(q.Events) != 2 || q.LastReturned != 2 || q.Version != 2 || !q.Complete {
		t.Fatalf("query answer decoded to %+v", q)
	}
	if r := q.Events[0]; r.SequenceNumber != 1 || r.Type != "t" || string(r.Payload) != `{"a": 1.50}` || r.OccurredAt.IsZero() {
		t.Errorf("first record %+v (payload %s); want #1 of type t with its payload byte for byte", r, r.Payload)
	}

	// An append-if conflict: the Error shape carries both versions.
	code, b = apitest.Call(t, "POST", base+"/v1/append-if", token,
		`{"events":[{"type":"t","payload":{}}],"context":{"filters":[{"event_types":["t"]}]},"expected_context_version":0}`)
	e := apitest.Decode[apitest.Error](t, b)
	if code != http.StatusConflict || e.Error.Reason != "CONTEXT_VERSION_CONFLICT" || e.Expected == nil || *e.Expected != 0 || e.Actual == nil || *e.Actual != 1 {
		t.Errorf("append-if conflict: %d %s", code, b)
	}

	// A bad request is 400 with a reason; MustOK fails the test and says
	// what came back.
	code, b = apitest.Call(t, "POST", base+"/v1/append", token, `{"events":[]}`)
	if e := apitest.Decode[apitest.Error](t, b); code != http.StatusBadRequest || e.Error.Reason != "EMPTY_APPEND" {
		t.Errorf("empty append: %d %s", code, b)
	}
	wantFailure(t, try(t, func(tb testing.TB) { apitest.MustOK(tb, "POST", base+"/v1/append", token, `{"events":[]}`) }), "400")
	wantFailure(t, try(t, func(tb testing.TB) { apitest.MustOK(tb, "POST", base+"/v1/append", "", `{"events":[]}`) }), "401")
	if f := try(t, func(tb testing.TB) { apitest.MustOK(tb, "POST", base+"/v1/query", token, `{}`) }); f != "" {
		t.Errorf("MustOK of a good query failed: %s", f)
	}
}

// TestCallTransportError: a server that is gone fails the test, rather
// than returning a status the caller might take for the server's.
func TestCallTransportError(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	wantFailure(t, try(t, func(tb testing.TB) { apitest.Call(tb, "GET", url+"/v1/query", "", "") }), "GET "+url+"/v1/query")
	wantFailure(t, try(t, func(tb testing.TB) { apitest.OpenSSE(tb, "GET", url+"/v1/stream", "", "", "") }), "GET "+url+"/v1/stream")
}

// TestDecode: Decode accepts exactly the fields of its type.
func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		fails    string // "" if Decode must pass
	}{
		{"known fields", `{"first_sequence_number":3,"last_sequence_number":4,"committed_count":2,"duplicate":true}`, ""},
		{"fewer fields", `{"first_sequence_number":3}`, ""},
		{"a field the type lacks", `{"first_sequence_number":3,"leader":"n1"}`, `unknown field "leader"`},
		{"wrong type", `{"first_sequence_number":"3"}`, "cannot unmarshal"},
		{"not JSON", `<html>`, "decode <html>"},
		{"empty", ``, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got apitest.AppendResult
			f := try(t, func(tb testing.TB) { got = apitest.Decode[apitest.AppendResult](tb, []byte(tt.in)) })
			if tt.fails == "" {
				if f != "" {
					t.Fatalf("Decode failed: %s", f)
				}
				if got.First != 3 {
					t.Fatalf("Decode = %+v", got)
				}
				return
			}
			wantFailure(t, f, tt.fails)
		})
	}
}

// TestStreamAgainstTheAPI: OpenSSE opens the API's stream, Records
// collects the batches up to a sequence number in order and returns the
// last event id, and a stream reopened with that id as Last-Event-ID
// carries on after it. A refused stream returns the status and body.
func TestStreamAgainstTheAPI(t *testing.T) {
	base := startAPI(t)
	for i := 1; i <= 3; i++ {
		apitest.MustOK(t, "POST", base+"/v1/append", token, fmt.Sprintf(`{"events":[{"type":"t","payload":{"i":%d}}]}`, i))
	}
	st, code, body := apitest.OpenSSE(t, "GET", base+"/v1/stream?after=0", token, "", "")
	if st == nil {
		t.Fatalf("OpenSSE: %d %s", code, body)
	}
	apitest.MustOK(t, "POST", base+"/v1/append", token, `{"events":[{"type":"t","payload":{"i":4}},{"type":"t","payload":{"i":5}}]}`)
	recs, lastID := st.Records(t, 5)
	if len(recs) != 5 || lastID != "5" {
		t.Fatalf("Records = %d records, last id %q; want 5, \"5\"", len(recs), lastID)
	}
	for i, r := range recs {
		if r.SequenceNumber != uint64(i+1) || string(r.Payload) != fmt.Sprintf(`{"i":%d}`, i+1) {
			t.Errorf("record %d: #%d %s", i, r.SequenceNumber, r.Payload)
		}
	}
	// Close ends the reader: Events is closed.
	st.Close()
	deadline := time.After(apitest.Wait)
	for open := true; open; {
		select {
		case _, open = <-st.Events:
		case <-deadline:
			t.Fatal("Events still open after Close")
		}
	}

	st2, _, _ := apitest.OpenSSE(t, "GET", base+"/v1/stream", token, lastID, "")
	apitest.MustOK(t, "POST", base+"/v1/append", token, `{"events":[{"type":"t","payload":{"i":6}}]}`)
	if recs, id := st2.Records(t, 6); len(recs) != 1 || recs[0].SequenceNumber != 6 || id != "6" {
		t.Fatalf("resumed after %s: %+v, id %q; want #6 alone", lastID, recs, id)
	}

	st3, code, body := apitest.OpenSSE(t, "GET", base+"/v1/stream?after=x", token, "", "")
	if st3 != nil || code != http.StatusBadRequest || !strings.Contains(string(body), "INVALID_ARGUMENT") {
		t.Fatalf("OpenSSE with a bad position: %v %d %s; want nil, 400 and the error", st3, code, body)
	}
}

// scripted serves one SSE answer with the given body (and Content-Type).
func scripted(t *testing.T, contentType, body string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestSSEParsing: the reader splits an SSE answer into events as the
// server writes them: id, event name, data lines joined with newlines,
// comments as events named ":", and nothing for a blank line alone.
func TestSSEParsing(t *testing.T) {
	u := scripted(t, "text/event-stream", ": hello\n\n"+
		"id: 7\nevent: batch\ndata: {\"a\":1}\n\n"+
		"\n"+ // a stray blank line is no event
		"event: multi\ndata: line one\ndata: line two\n\n"+
		":keepalive\n\n"+
		"event: caught-up\n\n"+
		"id: 9\ndata: no name\n\n"+
		"event: unterminated\ndata: lost\n") // the stream ends mid-event
	st, code, body := apitest.OpenSSE(t, "GET", u, "", "", "")
	if st == nil {
		t.Fatalf("OpenSSE: %d %s", code, body)
	}
	want := []apitest.Event{
		{Name: ":", Data: "hello"},
		{ID: "7", Name: "batch", Data: `{"a":1}`},
		{Name: "multi", Data: "line one\nline two"},
		{Name: ":", Data: "keepalive"},
		{Name: "caught-up"},
		{ID: "9", Data: "no name"},
	}
	var got []apitest.Event
	deadline := time.After(apitest.Wait)
	for done := false; !done; {
		select {
		case ev, ok := <-st.Events:
			if !ok {
				done = true
				break
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("the stream did not end; got %+v", got)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n%q\nwant\n%q", got, want)
	}
}

// TestStreamHelpersFail: Next, Records and OpenSSE fail the test on what
// a broken server would send, instead of returning something plausible.
func TestStreamHelpersFail(t *testing.T) {
	batch := func(id string, seqs ...int) string {
		var recs []string
		for _, s := range seqs {
			recs = append(recs, fmt.Sprintf(`{"sequence_number":%d,"occurred_at":"2026-01-02T03:04:05Z","type":"t","payload":{}}`, s))
		}
		return fmt.Sprintf("id: %s\nevent: batch\ndata: {\"events\":[%s]}\n\n", id, strings.Join(recs, ","))
	}
	tests := []struct {
		name, body string
		upTo       uint64
		fails      string // "" if Records must return records 1..upTo
	}{
		{"good batches, other events skipped", ": hi\n\n" + batch("2", 1, 2) + "event: caught-up\ndata: {}\n\n" + batch("3", 3), 3, ""},
		{"batch id not its last sequence number", batch("1", 1, 2), 2, `batch id "1", want its last sequence number 2`},
		{"empty batch", "id: 1\nevent: batch\ndata: {\"events\":[]}\n\n", 1, "empty batch"},
		{"unknown field in a record", "id: 1\nevent: batch\ndata: {\"events\":[{\"sequence_number\":1,\"extra\":1}]}\n\n", 1, `unknown field "extra"`},
		{"error event", batch("1", 1) + "event: error\ndata: {\"code\":\"UNAVAILABLE\"}\n\n", 2, `stream error: {"code":"UNAVAILABLE"}`},
		{"stream ends before upTo", batch("1", 1), 2, "the stream ended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := scripted(t, "text/event-stream", tt.body)
			var recs []apitest.Record
			f := try(t, func(tb testing.TB) {
				st, code, b := apitest.OpenSSE(tb, "GET", u, "", "", "")
				if st == nil {
					tb.Fatalf("OpenSSE: %d %s", code, b)
				}
				recs, _ = st.Records(tb, tt.upTo)
			})
			if tt.fails == "" {
				if f != "" {
					t.Fatalf("Records failed: %s", f)
				}
				for i, r := range recs {
					if r.SequenceNumber != uint64(i+1) {
						t.Fatalf("Records = %+v", recs)
					}
				}
				if len(recs) != int(tt.upTo) {
					t.Fatalf("Records = %d records, want %d", len(recs), tt.upTo)
				}
				return
			}
			wantFailure(t, f, tt.fails)
		})
	}

	t.Run("not an event stream", func(t *testing.T) {
		u := scripted(t, "application/json", `{}`)
		wantFailure(t, try(t, func(tb testing.TB) { apitest.OpenSSE(tb, "GET", u, "", "", "") }), `Content-Type "application/json"`)
	})
}

// TestOpenSSESendsHeadersAndBody: the token, Last-Event-ID and the body
// reach the server.
func TestOpenSSESendsHeadersAndBody(t *testing.T) {
	got := make(chan string, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s|%s|%s|%s", r.Method, r.Header.Get("Authorization"), r.Header.Get("Last-Event-ID"), b)
		w.Header().Set("Content-Type", "text/event-stream")
	}))
	t.Cleanup(hs.Close)
	st, code, b := apitest.OpenSSE(t, "POST", hs.URL, "tok", "42", `{"after":1}`)
	if st == nil {
		t.Fatalf("OpenSSE: %d %s", code, b)
	}
	if g, want := <-got, `POST|Bearer tok|42|{"after":1}`; g != want {
		t.Fatalf("server saw %q, want %q", g, want)
	}
}
