package client

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/metadata"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// recordingStream is the sending half of a Writes stream that records what
// is sent; the first Send waits until release is closed.
type recordingStream struct {
	release chan struct{}
	once    sync.Once
	entered chan struct{}

	mu   sync.Mutex
	sent []*factstrv1.WritesRequest
}

func (r *recordingStream) Send(m *factstrv1.WritesRequest) error {
	r.once.Do(func() {
		close(r.entered)
		<-r.release
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, m)
	return nil
}

func (r *recordingStream) Recv() (*factstrv1.WritesResponse, error) { select {} }

func (r *recordingStream) Header() (metadata.MD, error) { return nil, nil }

func appendReq(id uint64, payload string) *factstrv1.WritesRequest {
	return &factstrv1.WritesRequest{Id: id, Call: &factstrv1.WritesRequest_Append{Append: &factstrv1.AppendRequest{
		Events: []*factstrv1.Event{{Type: "t", Payload: []byte(payload)}}}}}
}

// Requests queued while one is being sent go out together in the next
// message, bounded by maxBatchBytes; to a node that takes no batches each
// goes alone.
func TestWriteStreamBatchesWhatQueuesDuringASend(t *testing.T) {
	big := `"` + strings.Repeat("x", maxBatchBytes/3) + `"`
	tests := []struct {
		name     string
		batching bool
		payloads []string // of the requests queued during the first send
		want     []int    // requests per message after the first
	}{
		{"batches", true, []string{"1", "2", "3"}, []int{3}},
		{"no batches from an older node", false, []string{"1", "2", "3"}, []int{1, 1, 1}},
		{"bounded in bytes", true, []string{big, big, big, "1"}, []int{2, 2}},
		{"one queued goes alone", true, []string{"1"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &recordingStream{release: make(chan struct{}), entered: make(chan struct{})}
			ws := &muxStream[*factstrv1.WritesRequest, *factstrv1.WritesResponse]{kind: writesKind, stream: rs}
			ws.batching.Store(tt.batching)
			first := make(chan error, 1)
			go func() { first <- ws.send(appendReq(1, "0")) }()
			<-rs.entered
			for i, p := range tt.payloads {
				if err := ws.send(appendReq(uint64(i+2), p)); err != nil {
					t.Fatal(err)
				}
			}
			close(rs.release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			rs.mu.Lock()
			defer rs.mu.Unlock()
			if len(rs.sent) != 1+len(tt.want) {
				t.Fatalf("%d messages, want %d", len(rs.sent), 1+len(tt.want))
			}
			if rs.sent[0].GetId() != 1 || len(rs.sent[0].GetBatch()) != 0 {
				t.Fatalf("first message %v, want request 1 alone", rs.sent[0])
			}
			next := uint64(2)
			for i, n := range tt.want {
				m := rs.sent[i+1]
				reqs := []*factstrv1.WritesRequest{m}
				if len(m.GetBatch()) > 0 {
					reqs = m.GetBatch()
					if m.GetCall() != nil || m.GetId() != 0 {
						t.Fatalf("a batch message carries a request of its own: %v", m)
					}
				}
				if len(reqs) != n || (n == 1 && len(m.GetBatch()) != 0) {
					t.Fatalf("message %d carries %d requests (batch %v), want %d", i+1, len(reqs), len(m.GetBatch()) > 0, n)
				}
				for _, r := range reqs {
					if r.GetId() != next {
						t.Fatalf("request %d sent where %d was due: out of order", r.GetId(), next)
					}
					next++
				}
			}
		})
	}
}
