// Package apitest is a small client of the HTTP/JSON API for tests: plain
// calls, the JSON shapes of answers, and a Server-Sent Events reader. It
// fails the test on transport errors and bounds every wait.
package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Wait bounds every call and every wait for an event.
const Wait = 20 * time.Second

// Call sends a request (body "" sends none; token "" no Authorization) and
// returns the status and the body.
func Call(t testing.TB, method, url, token, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
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
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// MustOK is Call failing the test unless the answer is 200.
func MustOK(t testing.TB, method, url, token, body string) []byte {
	t.Helper()
	code, b := Call(t, method, url, token, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s %.200s: %d %s", method, url, body, code, b)
	}
	return b
}

// Error is an error answer.
type Error struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	} `json:"error"`
	Expected *uint64 `json:"expected_context_version"`
	Actual   *uint64 `json:"actual_context_version"`
}

// Record is an event record; Payload keeps the bytes as sent.
type Record struct {
	SequenceNumber uint64          `json:"sequence_number"`
	OccurredAt     time.Time       `json:"occurred_at"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
}

// QueryResult is the answer of POST /v1/query.
type QueryResult struct {
	Events       []Record `json:"events"`
	LastReturned uint64   `json:"last_returned_sequence_number"`
	Version      uint64   `json:"current_context_version"`
	Complete     bool     `json:"complete"`
}

// AppendResult is the answer of POST /v1/append and /v1/append-if.
type AppendResult struct {
	First     uint64 `json:"first_sequence_number"`
	Last      uint64 `json:"last_sequence_number"`
	Count     uint64 `json:"committed_count"`
	Duplicate bool   `json:"duplicate"`
}

// Batch is the data of a batch event.
type Batch struct {
	Events []Record `json:"events"`
	// Durable streams: the delivery's attempt (1 first; 0 on live
	// streams) and whether it redelivers parked events.
	Attempt    uint32 `json:"attempt"`
	Redelivery bool   `json:"redelivery"`
}

// Decode decodes b into a T, refusing fields T does not have.
func Decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %.500s: %v", b, err)
	}
	return v
}

// Event is one Server-Sent Event; a comment has Name ":" and its text in
// Data.
type Event struct {
	ID, Name, Data string
}

// Stream reads the events of an open SSE answer.
type Stream struct {
	resp   *http.Response
	cancel context.CancelFunc
	// Events delivers every event and comment; closed at the end.
	Events chan Event
}

// OpenSSE opens a stream. On a status other than 200 it returns nil, the
// status and the body.
func OpenSSE(t testing.TB, method, url, token, lastID, body string) (*Stream, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// Only the headers are bounded here: the stream stays open.
	timer := time.AfterFunc(Wait, cancel)
	resp, err := http.DefaultClient.Do(req)
	timer.Stop()
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
		cancel()
		t.Fatalf("%s %s: Content-Type %q", method, url, ct)
	}
	s := &Stream{resp: resp, cancel: cancel, Events: make(chan Event, 4096)}
	go s.read()
	t.Cleanup(s.Close)
	return s, http.StatusOK, nil
}

func (s *Stream) read() {
	defer close(s.Events)
	r := bufio.NewReader(s.resp.Body)
	var ev Event
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.Name != "" || len(data) > 0 {
				ev.Data = strings.Join(data, "\n")
				s.Events <- ev
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, ":"):
			s.Events <- Event{Name: ":", Data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
}

// Close ends the stream (the client goes away).
func (s *Stream) Close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// Next returns the next event that is not a comment; the test fails when
// none comes within Wait or the stream ends.
func (s *Stream) Next(t testing.TB) Event {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case ev, ok := <-s.Events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.Name != ":" {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event within %v", Wait)
		}
	}
}

// Records reads batch events until records up to sequence number upTo
// arrived (other events are skipped) and returns the records in order; it
// fails the test when a batch's id is not its last sequence number.
func (s *Stream) Records(t testing.TB, upTo uint64) (recs []Record, lastID string) {
	t.Helper()
	for len(recs) == 0 || recs[len(recs)-1].SequenceNumber < upTo {
		ev := s.Next(t)
		if ev.Name == "error" {
			t.Fatalf("stream error: %s", ev.Data)
		}
		if ev.Name != "batch" {
			continue
		}
		b := Decode[Batch](t, []byte(ev.Data))
		if len(b.Events) == 0 {
			t.Fatalf("empty batch %q", ev.Data)
		}
		if want := b.Events[len(b.Events)-1].SequenceNumber; ev.ID != strconvU(want) {
			t.Fatalf("batch id %q, want its last sequence number %d", ev.ID, want)
		}
		recs, lastID = append(recs, b.Events...), ev.ID
	}
	return recs, lastID
}

func strconvU(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
