package streams

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// A live subscription whose handler holds a delivery is behind by what
// was committed after it; once it has delivered everything it is not.
func TestLiveLag(t *testing.T) {
	hub := NewHub(0)
	src := &logSource{}
	e := New(Config{Source: src, Hub: hub, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer e.Close()
	src.append(hub) // 1: before the subscription, not its lag
	entered, release := make(chan uint64, 8), make(chan struct{})
	sub, err := e.Live(t.Context(), contract.EventQuery{}, false, func(_ context.Context, b []contract.EventRecord) error {
		entered <- b[0].SequenceNumber
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if lag, behind := e.LiveLag(); lag != 0 || behind != 0 {
		t.Fatalf("a new live stream: lag %d, %d behind; want none", lag, behind)
	}
	for range 3 {
		src.append(hub) // 2..4
	}
	if seq := <-entered; seq != 2 {
		t.Fatalf("first delivery %d, want 2", seq)
	}
	// The handler holds 2: delivered position is still 1, head 4.
	if lag, behind := e.LiveLag(); lag != 3 || behind != 1 {
		t.Fatalf("held at 2: lag %d, %d behind; want 3, 1", lag, behind)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		lag, behind := e.LiveLag()
		if lag == 0 && behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delivering everything: lag %d, %d behind", lag, behind)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
