package server

import (
	"errors"
	"testing"

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
