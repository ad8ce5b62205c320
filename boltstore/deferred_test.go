package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

func deferredOpts(interval time.Duration) []boltstore.Option {
	return []boltstore.Option{boltstore.WithReplicated(), boltstore.WithNoSync(true), boltstore.WithCommitInterval(interval)}
}

// A store that defers its commits applies exactly what one committing every
// Apply does, results and state, with reads in between seeing everything
// applied before them; and it commits only when something reads it.
func TestDeferredCommitMatchesCommitEach(t *testing.T) {
	entries := randomEntries(11, 150)
	each, _ := openStore(t, boltstore.WithReplicated(), boltstore.WithNoSync(true))
	deferred, _ := openStore(t, deferredOpts(time.Hour)...)

	var resEach, resDeferred [][]command.Result
	reads := uint64(0)
	for i := 0; i < len(entries); {
		n := min(1+i%5, len(entries)-i)
		r, err := each.Apply(entries[i : i+n])
		if err != nil {
			t.Fatal(err)
		}
		resEach = append(resEach, r...)
		if r, err = deferred.Apply(entries[i : i+n]); err != nil {
			t.Fatal(err)
		}
		resDeferred = append(resDeferred, r...)
		i += n
		if i%40 < 5 { // read now and then: the open transaction commits first
			reads++
			if fe, fd := fingerprint(t, each), fingerprint(t, deferred); fe != fd {
				t.Fatalf("after entry %d the deferring store reads differently:\n%s\n%s", i, fe, fd)
			}
		}
	}
	if fe, fd := fmtResults(resEach), fmtResults(resDeferred); fe != fd {
		t.Fatalf("results differ:\n%s\n%s", fe, fd)
	}
	commits := deferred.Replica().Commits()
	if commits != reads {
		t.Fatalf("%d commits for %d entries and %d reads in between; want one per read (each found applied entries)", commits, len(entries), reads)
	}
	if fe, fd := fingerprint(t, each), fingerprint(t, deferred); fe != fd {
		t.Fatalf("final state differs:\n%s\n%s", fe, fd)
	}
	if got := deferred.Replica().Commits(); got != commits+1 {
		t.Fatalf("commits %d after the final reads, want %d: one for what was applied since the last read", got, commits+1)
	}
	if fd := fingerprint(t, deferred); deferred.Replica().Commits() != commits+1 {
		t.Fatalf("reading again with nothing applied committed again: %d\n%s", deferred.Replica().Commits(), fd)
	}
}

// AppendIf and idempotency keys are decided against entries applied earlier
// in the same open transaction, not only against what was committed.
func TestDeferredCommitDecidesAgainstUncommitted(t *testing.T) {
	s, _ := openStore(t, deferredOpts(time.Hour)...)
	apply := func(idx uint64, c command.Command) command.Result {
		t.Helper()
		switch cc := c.(type) {
		case command.Append:
			cc.OccurredAt = epoch
			c = cc
		case command.AppendIf:
			cc.OccurredAt = epoch
			c = cc
		}
		res, err := s.Apply([]command.Entry{{Index: idx, Commands: []command.Command{c}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0][0]
	}
	apply(1, command.Append{Events: []contract.NewEvent{ev("A", `{"k":1}`)}, IdempotencyKey: "k1"})
	r := apply(2, command.AppendIf{Events: []contract.NewEvent{ev("A", `{"k":1}`)}, Context: predQ([]string{"A"}, `{"k":1}`), Expected: 0})
	var conflict *contract.ConflictError
	if !errors.As(r.Err, &conflict) || conflict.Actual != 1 {
		t.Fatalf("AppendIf against an uncommitted append: %+v, want a conflict with actual 1", r)
	}
	r = apply(3, command.Append{Events: []contract.NewEvent{ev("A", `{}`)}, IdempotencyKey: "k1"})
	if !r.Duplicate || r.Append.FirstSequenceNumber != 1 {
		t.Fatalf("retry of an uncommitted key: %+v, want the first outcome as a duplicate", r)
	}
	if s.Replica().Commits() != 0 {
		t.Fatalf("%d commits without a read", s.Replica().Commits())
	}
	if got := mustQuery(t, s, typeQ("A")); len(got.Events) != 1 {
		t.Fatalf("query after the applies: %d events, want 1", len(got.Events))
	}
}

// A crash loses the open transaction, and only it; the file then says it was
// not closed cleanly, which is what makes a cluster node rebuild it. Close
// commits it.
func TestDeferredCommitCloseAndCrash(t *testing.T) {
	entries := randomEntries(3, 40)
	t.Run("crash", func(t *testing.T) {
		s, path := openStore(t, deferredOpts(time.Hour)...)
		if _, err := s.Apply(entries[:20]); err != nil {
			t.Fatal(err)
		}
		_ = s.Replica().Head() // not a read of the file: no commit
		if err := s.Snapshot(new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(entries[20:]); err != nil {
			t.Fatal(err)
		}
		if err := s.Abandon(); err != nil {
			t.Fatal(err)
		}
		r := reopen(t, path, deferredOpts(time.Hour)...)
		if r.Replica().WasClean() || r.Replica().AppliedIndex() != 20 {
			t.Fatalf("after a crash: clean %v, applied %d; want false, 20 (the last commit)", r.Replica().WasClean(), r.Replica().AppliedIndex())
		}
	})
	t.Run("close", func(t *testing.T) {
		s, path := openStore(t, deferredOpts(time.Hour)...)
		if _, err := s.Apply(entries); err != nil {
			t.Fatal(err)
		}
		want := fingerprintNoClose(t, entries)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r := reopen(t, path, deferredOpts(time.Hour)...)
		if !r.Replica().WasClean() || r.Replica().AppliedIndex() != 40 {
			t.Fatalf("after Close: clean %v, applied %d; want true, 40", r.Replica().WasClean(), r.Replica().AppliedIndex())
		}
		if got := fingerprint(t, r); got != want {
			t.Fatalf("reopened state differs:\n%s\n%s", got, want)
		}
	})
}

// fingerprintNoClose is the fingerprint of a commit-each store that applied
// entries.
func fingerprintNoClose(t *testing.T, entries []command.Entry) string {
	t.Helper()
	s, _ := openStore(t, boltstore.WithReplicated(), boltstore.WithNoSync(true))
	if _, err := s.Apply(entries); err != nil {
		t.Fatal(err)
	}
	return fingerprint(t, s)
}

// With nobody reading, the open transaction commits on its own once it is
// the interval old, and an idle store then commits nothing more.
func TestDeferredCommitTimer(t *testing.T) {
	s, path := openStore(t, deferredOpts(20*time.Millisecond)...)
	if _, err := s.Apply(randomEntries(5, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Replica().Commits() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the open transaction was not committed within 10 s of a 20 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if s.Replica().Commits() != 1 {
		t.Fatalf("%d commits; a read after the timer's commit found nothing to commit", s.Replica().Commits())
	}
	if fi2, _ := os.Stat(path); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("the idle store wrote its file again")
	}
}

// A snapshot holds every applied entry, committed or not, so that Raft can
// compact the log up to its index.
func TestDeferredSnapshotHoldsAppliedEntries(t *testing.T) {
	entries := randomEntries(9, 30)
	s, _ := openStore(t, deferredOpts(time.Hour)...)
	if _, err := s.Apply(entries); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	r, _ := openStore(t, deferredOpts(time.Hour)...)
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if r.Replica().AppliedIndex() != 30 {
		t.Fatalf("restored applied index %d, want 30", r.Replica().AppliedIndex())
	}
	if a, b := fingerprint(t, s), fingerprint(t, r); a != b {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
}

// On a full disk the commit fails: the store then refuses applies and reads
// with the error instead of serving a state that lost applied entries, and
// Close leaves the file marked unclean so that it is rebuilt.
func TestDeferredCommitFailureStopsTheStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	path := filepath.Join(dir, "fsm.db")
	s, err := boltstore.Open(path, append(deferredOpts(time.Hour), boltstore.WithLogger(quietLogger()))...)
	if err != nil {
		t.Fatal(err)
	}
	// Fill what is left of the file system.
	ballast, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ballast.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	_ = ballast.Close()

	payload := `{"pad":"` + strings.Repeat("x", 2000) + `"}`
	var failed error
	for i := uint64(1); i <= 2000 && failed == nil; i++ {
		cmd := command.Append{OccurredAt: epoch, Events: []contract.NewEvent{ev("A", payload)}}
		if _, err := s.Apply([]command.Entry{{Index: i, Commands: []command.Command{cmd}}}); err != nil {
			failed = err
			break
		}
		if i%50 == 0 {
			_, failed = s.Query(context.Background(), typeQ("A"))
		}
	}
	if failed == nil {
		t.Fatal("4 MB of appends on a full 8 MB file system never failed")
	}
	if _, err := s.Query(context.Background(), typeQ("A")); err == nil {
		t.Fatal("a read after the failed commit succeeded")
	}
	if _, err := s.Apply([]command.Entry{{Index: s.Replica().AppliedIndex() + 1, Commands: []command.Command{command.Noop{}}}}); err == nil {
		t.Fatal("an apply after the failed commit succeeded")
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close of a store that lost applied entries reported no error")
	}
	if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
		t.Fatal(err)
	}
	r, err := boltstore.Open(path, append(deferredOpts(time.Hour), boltstore.WithLogger(quietLogger()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Replica().WasClean() {
		t.Fatal("the file of a store that lost applied entries says it was closed cleanly")
	}
}
