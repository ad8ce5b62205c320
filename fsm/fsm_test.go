package fsm_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm"
	"github.com/factstr/factstr-go/fsm/command"
)

// A store that cannot apply committed entries stops the node through
// Fatal, with an error naming the file, and nothing is published as applied.
func TestApplyStorageFailureIsFatal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	store, err := boltstore.Open(path, boltstore.WithReplicated(), boltstore.WithNoSync(true))
	if err != nil {
		t.Fatal(err)
	}
	f := fsm.New(store, nil)
	var fatal error
	f.Fatal = func(err error) { fatal = err }
	cmd := command.Encode([]command.Command{command.Append{OccurredAt: time.Now(),
		Events: []contract.NewEvent{{Type: "t", Payload: json.RawMessage(`{}`)}}}})
	if r := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: cmd}); fatal != nil {
		t.Fatalf("healthy apply: %v (%v)", fatal, r)
	}
	// A closed store fails every transaction, as a broken disk does.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	resp := f.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: cmd}})
	if fatal == nil || !strings.Contains(fatal.Error(), path) {
		t.Fatalf("Fatal called with %v, want an error naming %s", fatal, path)
	}
	if _, ok := resp[0].(error); !ok {
		t.Fatalf("response %v, want the error", resp[0])
	}
	if got := f.AppliedIndex(); got != 1 {
		t.Fatalf("applied index %d after a failed apply, want 1", got)
	}
}
