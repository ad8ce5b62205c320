package boltstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
)

const crashEnv = "BOLTSTORE_CRASH_TEST_PATH"

// crashEvent is the payload of the crash test's events: every event names
// its batch and the batch's size, so a half-written batch is recognisable.
type crashEvent struct {
	Batch string `json:"batch"`
	Size  int    `json:"size"`
	Index int    `json:"index"`
}

// TestHelperProcess is the child of TestCrashSafety: it appends batches in
// a loop from several goroutines (so group commits happen) and prints one
// line per acknowledged batch, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only runs as the child process of TestCrashSafety")
	}
	s, err := boltstore.Open(path, boltstore.WithLogger(quietLogger()))
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("p%d-w%d-%d", os.Getpid(), w, i)
				size := 1 + (i*7+w)%5
				events := make([]contract.NewEvent, size)
				for j := range events {
					p, _ := json.Marshal(crashEvent{Batch: id, Size: size, Index: j})
					events[j] = contract.NewEvent{Type: "Crash", Payload: p}
				}
				res, err := s.Append(context.Background(), events)
				if err != nil {
					fmt.Println("append failed:", err)
					os.Exit(2)
				}
				out.Lock()
				// One write per line: what the parent reads was acknowledged.
				fmt.Printf("ack %s %d %d %d\n", id, size, res.FirstSequenceNumber, res.LastSequenceNumber)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	for round := range 3 {
		acked := runAndKill(t, path, 40+round*25)
		checkAfterCrash(t, path, acked, round)
	}
}

type ack struct {
	id          string
	size        int
	first, last uint64
}

// runAndKill runs the child on path and SIGKILLs it after n acknowledged
// batches; it returns every acknowledgement read.
func runAndKill(t *testing.T, path string, n int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []ack
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var a ack
		if _, err := fmt.Sscanf(sc.Text(), "ack %s %d %d %d", &a.id, &a.size, &a.first, &a.last); err != nil {
			continue // test framework output
		}
		acks = append(acks, a)
		if len(acks) == n {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Lines already in the pipe when the kill landed were acknowledged too.
	_ = cmd.Wait()
	if len(acks) < n {
		t.Fatalf("the child acknowledged only %d batches before it ended", len(acks))
	}
	return acks
}

func checkAfterCrash(t *testing.T, path string, acked []ack, round int) {
	t.Helper()
	s, err := boltstore.Open(path, boltstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
	}
	defer s.Close()
	if s.Replica().WasClean() {
		t.Errorf("round %d: WasClean after SIGKILL", round)
	}
	res := mustQuery(t, s, contract.EventQuery{})
	if uint64(len(res.Events)) != s.Replica().Head() {
		t.Fatalf("round %d: %d events, head %d", round, len(res.Events), s.Replica().Head())
	}
	bySeq := make(map[uint64]crashEvent, len(res.Events))
	count := make(map[string]int)
	for i, e := range res.Events {
		if e.SequenceNumber != uint64(i+1) {
			t.Fatalf("round %d: sequence gap: event %d has number %d", round, i+1, e.SequenceNumber)
		}
		var ce crashEvent
		if err := json.Unmarshal(e.Payload, &ce); err != nil {
			t.Fatalf("round %d: event %d: %v", round, e.SequenceNumber, err)
		}
		bySeq[e.SequenceNumber] = ce
		count[ce.Batch]++
	}
	for _, e := range res.Events {
		ce := bySeq[e.SequenceNumber]
		if count[ce.Batch] != ce.Size {
			t.Fatalf("round %d: batch %s has %d of its %d events", round, ce.Batch, count[ce.Batch], ce.Size)
		}
	}
	for _, a := range acked {
		for seq := a.first; seq <= a.last; seq++ {
			ce, ok := bySeq[seq]
			if !ok || ce.Batch != a.id || ce.Index != int(seq-a.first) {
				t.Fatalf("round %d: acknowledged batch %s (%d..%d) is not intact at %d: %+v", round, a.id, a.first, a.last, seq, ce)
			}
		}
	}
	// Replay groups as committed, also across crashes.
	var batches int
	sub, err := s.StreamAllDurable(context.Background(), fmt.Sprintf("check-%d", round), func(_ context.Context, b []contract.EventRecord) error {
		batches++
		first := bySeq[b[0].SequenceNumber]
		if len(b) != first.Size {
			return fmt.Errorf("replayed batch of %d events for batch %s of %d", len(b), first.Batch, first.Size)
		}
		for _, e := range b {
			if bySeq[e.SequenceNumber].Batch != first.Batch {
				return fmt.Errorf("replayed batch mixes %s and %s", first.Batch, bySeq[e.SequenceNumber].Batch)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("round %d: replay: %v", round, err)
	}
	sub.Unsubscribe()
	if batches != len(count) {
		t.Errorf("round %d: replay delivered %d batches, the log holds %d", round, batches, len(count))
	}
	t.Logf("round %d: %d acknowledged batches, %d committed batches, %d events", round, len(acked), len(count), len(res.Events))
}
