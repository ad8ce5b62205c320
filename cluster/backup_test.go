package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

func TestBackupSeedsNewCluster(t *testing.T) {
	src := newCluster(t, 3, nil)
	for i := range 40 {
		if _, err := src.leader().Append(ctxT(t), []contract.NewEvent{ev("b", fmt.Sprintf(`{"i":%d}`, i)), ev("c", `{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// A durable stream holds its name while the backup is taken.
	sub, err := src.follower().StreamAllDurable(ctxT(t), "billing", func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var backup bytes.Buffer
	if err := src.follower().Admin().SnapshotSave(ctxT(t), &backup); err != nil {
		t.Fatalf("snapshot save: %v", err)
	}
	want := allEvents(t, src.leader())

	dst := newCluster(t, 3, nil)
	if _, err := dst.leader().Append(ctxT(t), []contract.NewEvent{ev("old", `1`)}); err != nil {
		t.Fatal(err)
	}
	if err := dst.leader().Admin().SnapshotRestore(ctxT(t), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("snapshot restore: %v", err)
	}
	// Linearizable reads on a follower see the restored state.
	res, err := dst.follower().Query(ctxT(t), contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Events, want) {
		t.Fatalf("restored cluster holds %d events, the backup %d", len(res.Events), len(want))
	}
	// New writes continue the sequence and reach every node.
	r, err := dst.follower().Append(ctxT(t), []contract.NewEvent{ev("after", `1`)})
	if err != nil || r.FirstSequenceNumber != uint64(len(want))+1 {
		t.Fatalf("append after restore = %+v, %v; want sequence %d", r, err, len(want)+1)
	}
	sameLogs(t, dst.running(), r.LastSequenceNumber)
	// The source's lease on "billing" does not follow the backup.
	sub2, err := dst.follower().StreamAllDurable(ctxT(t), "billing", func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatalf("durable name held by the source cluster is still held after restore: %v", err)
	}
	sub2.Unsubscribe()
}
