package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/internal/httpapi"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/memstore"
)

const waitFor = 20 * time.Second

// stubAdmin answers Status and Join with fixed values and leaves the rest
// unimplemented: the admin mapping is tested here, the real admin service
// against a cluster (e2e).
type stubAdmin struct {
	factstrv1.UnimplementedAdminServiceServer
}

func (stubAdmin) Status(context.Context, *factstrv1.StatusRequest) (*factstrv1.StatusResponse, error) {
	return &factstrv1.StatusResponse{NodeId: "n1", LeaderId: "n1", Term: 3, HeadSequenceNumber: 1<<63 + 1,
		Members:  []*factstrv1.Member{{Id: "n1", Suffrage: "voter", State: "leader", Healthy: true}},
		Warnings: []string{"a <warning> & more"}}, nil
}

func (stubAdmin) Join(_ context.Context, r *factstrv1.JoinRequest) (*factstrv1.JoinResponse, error) {
	if r.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "addr is empty")
	}
	return &factstrv1.JoinResponse{Contacted: 1}, nil
}

// node is an in-process node: memstore behind the real EventStoreService
// with the production codec and auth interceptors, reached through a
// PipeListener, and the API on a real loopback socket.
type node struct {
	url   string
	store *memstore.Store
}

func startNode(t *testing.T, tokens []server.Credential, mod func(*httpapi.Config)) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := server.AuthInterceptors(server.AuthConfig{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{server.CodecOption()}, auth...)...)
	store := memstore.New()
	server.NewEventStore(store, nil, log).Register(srv)
	factstrv1.RegisterAdminServiceServer(srv, stubAdmin{})
	pipe := httpapi.NewPipeListener()
	go func() { _ = srv.Serve(pipe) }()
	conn, err := pipe.Dial(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Conn: conn, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	api, err := httpapi.New(cfg)
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
	return &node{url: hs.URL, store: store}
}

// call sends a request and returns the status and the body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// mustOK calls and fails the test unless the answer is 200.
func mustOK(t *testing.T, method, url, token, body string) []byte {
	t.Helper()
	code, b := call(t, method, url, token, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s %s: %d %s", method, url, body, code, b)
	}
	return b
}

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Expected *uint64 `json:"expected_context_version"`
	Actual   *uint64 `json:"actual_context_version"`
}

type record struct {
	SequenceNumber uint64          `json:"sequence_number"`
	OccurredAt     time.Time       `json:"occurred_at"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
}

type queryResult struct {
	Events       []record `json:"events"`
	LastReturned uint64   `json:"last_returned_sequence_number"`
	Version      uint64   `json:"current_context_version"`
	Complete     bool     `json:"complete"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// sseEvent is one Server-Sent Event (or a comment, name ":").
type sseEvent struct {
	id, name, data string
}

// sseStream reads events from an open SSE response.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

func openSSE(t *testing.T, method, url, token, lastID, body string) (*sseStream, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, b
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &sseStream{resp: resp, cancel: cancel, events: make(chan sseEvent, 1024)}
	go func() {
		defer close(s.events)
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		var data []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.name != "" || len(data) > 0 {
					ev.data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				s.events <- sseEvent{name: ":", data: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	t.Cleanup(s.close)
	return s, http.StatusOK, nil
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next event that is not a comment.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.name != ":" {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event within %v", waitFor)
		}
	}
}

// dummyConn is a connection nothing is called on (route table tests).
type dummyConn struct{ grpc.ClientConnInterface }
