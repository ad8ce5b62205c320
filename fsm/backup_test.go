package fsm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/fsm/command"
)

var at = time.Unix(0, 1_700_000_000_123_456_789).UTC()

func events(types ...string) []contract.NewEvent {
	out := make([]contract.NewEvent, len(types))
	for i, t := range types {
		out[i] = contract.NewEvent{Type: t, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return out
}

func openFSM(t *testing.T) (*fsm.FSM, *boltstore.Store) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "fsm.db"), boltstore.WithReplicated(), boltstore.WithNoSync(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	f := fsm.New(store, nil)
	f.Fatal = func(err error) { t.Errorf("Fatal: %v", err) }
	t.Cleanup(f.Close)
	return f, store
}

func apply(t *testing.T, f *fsm.FSM, index uint64, cmd command.Command) {
	t.Helper()
	r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: command.Encode([]command.Command{cmd})})
	if err, ok := r.(error); ok {
		t.Fatalf("apply %d: %v", index, err)
	}
	if rs, ok := r.([]command.Result); ok && rs[0].Err != nil {
		t.Fatalf("apply %d: %v", index, rs[0].Err)
	}
}

// seeded returns an FSM at applied index 3 holding two events, a durable
// name held by n1 and n2's incarnation.
func seeded(t *testing.T) (*fsm.FSM, *boltstore.Store) {
	f, store := openFSM(t)
	apply(t, f, 1, command.Append{OccurredAt: at, Events: events("A", "B")})
	apply(t, f, 2, command.Acquire{Name: "orders", Holder: "n1/x"})
	apply(t, f, 3, command.SetIncarnation{Node: "n2", Incarnation: "0123456789abcdef0123456789abcdef"})
	if f.AppliedIndex() != 3 || store.Replica().Head() != 2 {
		t.Fatalf("seeded store at applied %d head %d, want 3 and 2", f.AppliedIndex(), store.Replica().Head())
	}
	return f, store
}

type restored struct {
	applied, head uint64
	holder        string
	incarnations  int
}

func state(t *testing.T, f *fsm.FSM, store *boltstore.Store) restored {
	t.Helper()
	_, holder, ok, err := store.Replica().Durable("orders")
	if err != nil || !ok {
		t.Fatalf("durable orders: ok=%v err=%v", ok, err)
	}
	inc, err := store.Replica().Incarnations()
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Query(context.Background(), contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(res.Events)) != store.Replica().Head() {
		t.Fatalf("query returned %d events, head is %d", len(res.Events), store.Replica().Head())
	}
	if f.AppliedIndex() != store.Replica().AppliedIndex() {
		t.Fatalf("FSM applied index %d, store's %d", f.AppliedIndex(), store.Replica().AppliedIndex())
	}
	return restored{applied: f.AppliedIndex(), head: store.Replica().Head(), holder: holder, incarnations: len(inc)}
}

// A Raft snapshot (no header) restores the state as it was; a backup
// (BackupHeader first) restores the events and durable cursors but not
// what belongs to the cluster it came from: its applied index, its leases,
// its node incarnations.
func TestRestoreSnapshotVersusBackup(t *testing.T) {
	_, srcStore := seeded(t)
	var snap, backup bytes.Buffer
	if err := srcStore.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if err := fsm.WriteBackup(srcStore, &backup); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(backup.Bytes(), []byte(fsm.BackupHeader)) {
		t.Fatalf("backup starts with %q, want the header %q", backup.Bytes()[:min(backup.Len(), 20)], fsm.BackupHeader)
	}
	if bytes.HasPrefix(snap.Bytes(), []byte(fsm.BackupHeader)) {
		t.Fatal("a Raft snapshot starts with the backup header")
	}
	tests := []struct {
		name string
		data []byte
		want restored
	}{
		{"raft snapshot", snap.Bytes(), restored{applied: 3, head: 2, holder: "n1/x", incarnations: 1}},
		{"backup", backup.Bytes(), restored{applied: 0, head: 2, holder: "", incarnations: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, store := openFSM(t)
			if err := f.Restore(io.NopCloser(bytes.NewReader(tt.data))); err != nil {
				t.Fatal(err)
			}
			if got := state(t, f, store); got != tt.want {
				t.Fatalf("after restore: %+v, want %+v", got, tt.want)
			}
			// The log goes on after the restore point.
			next := tt.want.applied + 1
			apply(t, f, next, command.Append{OccurredAt: at, Events: []contract.NewEvent{{Type: "C", Payload: json.RawMessage(`{}`)}}})
			if f.AppliedIndex() != next || store.Replica().Head() != 3 {
				t.Fatalf("after one more entry: applied %d head %d, want %d and 3", f.AppliedIndex(), store.Replica().Head(), next)
			}
		})
	}
}

// A restore of bytes that are no store is refused and leaves the state.
func TestRestoreRefusesGarbage(t *testing.T) {
	for _, data := range []string{"not a bbolt file", fsm.BackupHeader + "not a bbolt file", ""} {
		f, store := seeded(t)
		if err := f.Restore(io.NopCloser(bytes.NewReader([]byte(data)))); err == nil {
			t.Fatalf("Restore of %q succeeded", data)
		}
		if got := state(t, f, store); got != (restored{applied: 3, head: 2, holder: "n1/x", incarnations: 1}) {
			t.Fatalf("after a refused restore of %q: %+v, want the state before", data, got)
		}
	}
}
