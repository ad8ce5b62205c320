package server

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// Answers decided together go out together to a client that asked for
// batches, at most maxAnswersPerMessage to a message; to any other client,
// one a message.
func TestAnswerWithPacksAnswers(t *testing.T) {
	answers := func(n int) []*factstrv1.WritesResponse {
		out := make([]*factstrv1.WritesResponse, n)
		for i := range out {
			out[i] = &factstrv1.WritesResponse{Id: uint64(i + 1)}
		}
		return out
	}
	tests := []struct {
		name     string
		batching bool
		n        int
		want     []int // answers per message; 1 means the answer itself, not a batch of one
	}{
		{"one answer", true, 1, []int{1}},
		{"several", true, 5, []int{5}},
		{"bounded", true, maxAnswersPerMessage + 3, []int{maxAnswersPerMessage, 3}},
		{"client without batches", false, 3, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent []*factstrv1.WritesResponse
			var batch func([]*factstrv1.WritesResponse) *factstrv1.WritesResponse
			if tt.batching {
				batch = func(a []*factstrv1.WritesResponse) *factstrv1.WritesResponse {
					return &factstrv1.WritesResponse{Batch: a}
				}
			}
			send := answerWith(func(m *factstrv1.WritesResponse) error { sent = append(sent, m); return nil }, batch)
			if err := send(answers(tt.n)); err != nil {
				t.Fatal(err)
			}
			if len(sent) != len(tt.want) {
				t.Fatalf("%d messages, want %d", len(sent), len(tt.want))
			}
			next := uint64(1)
			for i, m := range sent {
				got := []*factstrv1.WritesResponse{m}
				if len(m.GetBatch()) > 0 {
					got = m.GetBatch()
				}
				if len(got) != tt.want[i] || (tt.want[i] == 1 && len(m.GetBatch()) > 0) {
					t.Fatalf("message %d: %d answers (batch %v), want %d", i, len(got), len(m.GetBatch()) > 0, tt.want[i])
				}
				for _, a := range got {
					if a.GetId() != next {
						t.Fatalf("answer %d where %d was due", a.GetId(), next)
					}
					next++
				}
			}
		})
	}
	boom := errors.New("boom")
	batch := func(a []*factstrv1.WritesResponse) *factstrv1.WritesResponse {
		return &factstrv1.WritesResponse{Batch: a}
	}
	if err := answerWith(func(*factstrv1.WritesResponse) error { return boom }, batch)(answers(2)); !errors.Is(err, boom) {
		t.Fatalf("send error: %v, want boom", err)
	}
}

// Large answers decided together are spread over messages of at most
// maxAnswerBytes (one larger than that goes alone), so that a batch never
// grows past what a client can receive.
func TestAnswerWithBoundsBytes(t *testing.T) {
	answer := func(id uint64, size int) *factstrv1.ReadsResponse {
		return &factstrv1.ReadsResponse{Id: id, Result: &factstrv1.ReadsResponse_Query{Query: &factstrv1.QueryResponse{
			Events: []*factstrv1.EventRecord{{Type: "t", Payload: make([]byte, size)}}}}}
	}
	third := maxAnswerBytes / 3
	answers := []*factstrv1.ReadsResponse{answer(1, third), answer(2, third), answer(3, third), answer(4, maxAnswerBytes+1), answer(5, 10)}
	var sent []*factstrv1.ReadsResponse
	send := answerWith(func(m *factstrv1.ReadsResponse) error { sent = append(sent, m); return nil },
		func(a []*factstrv1.ReadsResponse) *factstrv1.ReadsResponse { return &factstrv1.ReadsResponse{Batch: a} })
	if err := send(answers); err != nil {
		t.Fatal(err)
	}
	var got [][]uint64
	for _, m := range sent {
		if proto.Size(m) > maxAnswerBytes && len(m.GetBatch()) > 0 {
			t.Fatalf("a batch of %d bytes, over %d", proto.Size(m), maxAnswerBytes)
		}
		ids := []uint64{m.GetId()}
		if b := m.GetBatch(); len(b) > 0 {
			ids = nil
			for _, a := range b {
				ids = append(ids, a.GetId())
			}
		}
		got = append(got, ids)
	}
	want := "[[1 2] [3] [4] [5]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("messages %v, want %s", got, want)
	}
}
