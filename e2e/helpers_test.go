//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real processes; skipped with -short")
	}
}

// testCtx is a context bounded by d and by the test's own deadline.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	if dl, ok := t.Deadline(); ok {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20ms until it is true or d passes, then fails
// the test with what().
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", d, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lines is an io.Writer that keeps complete lines and lets a test wait for
// a line containing a string. Safe for concurrent use.
type lines struct {
	mu      sync.Mutex
	partial []byte
	all     []string
	changed chan struct{}
	tee     io.Writer
}

func newLines(tee io.Writer) *lines { return &lines{changed: make(chan struct{}), tee: tee} }

func (l *lines) Write(p []byte) (int, error) {
	if l.tee != nil {
		_, _ = l.tee.Write(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// Lines returns the complete lines so far.
func (l *lines) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

// Wait waits up to d for a line containing s and returns it.
func (l *lines) Wait(d time.Duration, s string) (string, bool) {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, ln := range l.all {
			if strings.Contains(ln, s) {
				l.mu.Unlock()
				return ln, true
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return "", false
		}
	}
}

// WaitCount waits up to d until there are at least n lines.
func (l *lines) WaitCount(d time.Duration, n int) bool {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		got, ch := len(l.all), l.changed
		l.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// runCLI runs the binary with args in dir and returns stdout and stderr.
func runCLI(ctx context.Context, bin, dir string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = testcluster.CleanEnv()
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("factstr-node %s: %w; stderr: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// tailRecord is one line of `factstr-node tail` output.
type tailRecord struct {
	Seq        uint64          `json:"sequence_number"`
	OccurredAt time.Time       `json:"occurred_at"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
}

func ev(typ, payload string) contract.NewEvent {
	return contract.NewEvent{Type: typ, Payload: json.RawMessage(payload)}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// localLog reads the whole log from one node with a LOCAL read, after the
// node applied at least minSeq.
func localLog(ctx context.Context, c *client.Client, minSeq uint64) ([]contract.EventRecord, error) {
	lctx := contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: minSeq})
	res, err := c.Query(lctx, contract.EventQuery{})
	if err != nil {
		return nil, err
	}
	return res.Events, nil
}

// checkGapless fails unless recs are numbered 1..len(recs).
func checkGapless(t *testing.T, who string, recs []contract.EventRecord) {
	t.Helper()
	for i, r := range recs {
		if r.SequenceNumber != uint64(i+1) {
			t.Fatalf("%s: record %d has sequence number %d, want %d (the log must be gapless from 1)", who, i, r.SequenceNumber, i+1)
		}
	}
}

// diffLogs returns "" when a and b hold the same records (sequence, type,
// payload, occurred-at), or a description of the first difference.
func diffLogs(a, b []contract.EventRecord) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d records vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.SequenceNumber != y.SequenceNumber || x.Type != y.Type || !sameJSON(x.Payload, y.Payload) || !x.OccurredAt.Equal(y.OccurredAt) {
			return fmt.Sprintf("record %d differs: %d %s %s %s vs %d %s %s %s", i,
				x.SequenceNumber, x.Type, x.Payload, x.OccurredAt.Format(time.RFC3339Nano),
				y.SequenceNumber, y.Type, y.Payload, y.OccurredAt.Format(time.RFC3339Nano))
		}
	}
	return ""
}

// openLog opens a log file for a subprocess in the test's temp dir.
func openLog(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(dir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// tailFile returns the last n lines of a file (for failure messages).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
