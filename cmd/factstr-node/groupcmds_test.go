package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// tail --durable NAME --group-key K --partitions N joins (creates) a
// consumer group, and admin streams show prints its partitions.
func TestTailGroupAndShowPartitions(t *testing.T) {
	store, addr := serveStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 4 {
		ev := contract.NewEvent{Type: "Posted", Payload: json.RawMessage(`{"account":"a` + string(rune('0'+i)) + `"}`)}
		if _, err := store.Append(ctx, []contract.NewEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmdTail(ctx, []string{"--group-key", "account", "--addr", addr}); err == nil || !strings.Contains(err.Error(), "--durable") {
		t.Fatalf("tail --group-key without --durable: %v, want a usage error naming --durable", err)
	}
	if err := cmdTail(ctx, []string{"--durable", "x", "--group-key", "a..b", "--addr", addr}); err == nil || !strings.Contains(err.Error(), "--group-key") {
		t.Fatalf("tail --group-key a..b: %v, want a usage error naming --group-key", err)
	}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- cmdTail(tctx, []string{"--durable", "ledger", "--group-key", "account", "--partitions", "3", "--addr", addr})
	}()
	var info contract.DurableInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		info, err = store.GetDurable(ctx, "ledger")
		if err == nil && info.Group != nil && info.Cursor == 4 && len(info.Group.Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail did not run the group to the head: %+v, %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if info.Group.Spec != (contract.GroupSpec{Key: contract.KeyField("account"), Partitions: 3}) {
		t.Errorf("tail created the group %s, want by account with 3 partitions", info.Group.Spec)
	}
	var out bytes.Buffer
	if err := runStreams(ctx, &out, []string{"show", "ledger", "--addr", addr}); err != nil {
		t.Fatalf("streams show: %v", err)
	}
	for _, want := range []string{"by account, 3 partitions, 1 members", "PARTITION", "\n0 ", "\n2 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("streams show lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := runStreams(ctx, &out, []string{"show", "ledger", "--json", "--addr", addr}); err != nil {
		t.Fatalf("streams show --json: %v", err)
	}
	var d durableJSON
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d.Group == nil || len(d.Group.Partitions) != 3 || d.Group.Key != "account" {
		t.Errorf("streams show --json: %v %+v", err, d)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("tail after Ctrl-C: %v", err)
	}
}
