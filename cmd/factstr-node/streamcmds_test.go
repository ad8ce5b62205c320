package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/memstore"
)

// serveStreams serves a memstore's event store and durable stream admin
// on a loopback socket.
func serveStreams(t *testing.T) (*memstore.Store, string) {
	t.Helper()
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	addr := testgrpc.Serve(t, func(srv *grpc.Server) {
		server.NewEventStore(store, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(srv)
		server.NewDurables(store).Register(srv)
	}, server.CodecOption())
	return store, addr
}

func TestAdminStreams(t *testing.T) {
	store, addr := serveStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if _, err := store.Append(ctx, []contract.NewEvent{{Type: "Billed", Payload: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan struct{}, 8)
	sub, err := store.StreamToDurable(ctx, "billing", contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"Billed"}}}},
		func(context.Context, []contract.EventRecord) error { got <- struct{}{}; return nil }, contract.StartAfter(1))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := runStreams(ctx, &out, append(args, "--addr", addr))
		return out.String(), err
	}
	out, err := run("list")
	if err != nil {
		t.Fatalf("streams list: %v", err)
	}
	for _, want := range []string{"NAME", "LAG TIME", "billing", "type Billed", "mem/"} {
		if !strings.Contains(out, want) {
			t.Errorf("streams list lacks %q:\n%s", want, out)
		}
	}
	out, err = run("show", "billing", "--json")
	if err != nil {
		t.Fatalf("streams show: %v", err)
	}
	var d durableJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("streams show --json printed %q: %v", out, err)
	}
	if d.Name != "billing" || d.Cursor != 3 || d.Head != 3 || d.LagEvents != 0 || d.LagSeconds != 0 || d.Start != "after 1" || d.Holder == "" || d.LastAckAt == "" {
		t.Errorf("streams show --json: %+v", d)
	}

	if _, err := run("reset", "billing", "--to", "0"); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Errorf("reset of a held name without --force: %v, want the name in use", err)
	}
	if _, err := run("reset", "billing"); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("reset without --to: %v, want a usage error naming --to", err)
	}
	out, err = run("reset", "billing", "--to", "beginning", "--force")
	if err != nil || !strings.Contains(out, "follows sequence 0") {
		t.Fatalf("forced reset: %v\n%s", err, out)
	}
	out, err = run("show", "billing", "--json")
	if err != nil || json.Unmarshal([]byte(out), &d) != nil || d.LagSeconds <= 0 {
		t.Errorf("streams show --json after a reset to the beginning: %v %q, want a lag time", err, out)
	}
	if _, err := run("show", "nope"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("show of an unknown name: %v, want not found", err)
	}
	if _, err := run("delete", "billing"); err != nil {
		t.Fatalf("delete of the name freed by the forced reset: %v", err)
	}
	out, err = run("list", "--json")
	if err != nil || strings.TrimSpace(out) != `{"streams":[]}` {
		t.Fatalf("streams list --json after delete: %v %q", err, out)
	}
	if _, err := run("frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown admin streams command") {
		t.Errorf("unknown command: %v", err)
	}
}

func TestTailDurableStart(t *testing.T) {
	store, addr := serveStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if _, err := store.Append(ctx, []contract.NewEvent{{Type: "A", Payload: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmdTail(ctx, []string{"--start", "end", "--addr", addr}); err == nil || !strings.Contains(err.Error(), "--durable") {
		t.Fatalf("tail --start without --durable: %v, want a usage error naming --durable", err)
	}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cmdTail(tctx, []string{"--durable", "audit", "--start", "2", "--addr", addr}) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := store.GetDurable(ctx, "audit")
		if err == nil && info.Holder != "" {
			if info.Start != (contract.StartPosition{Kind: contract.StartAfterSequence, After: 2}) {
				t.Errorf("tail --durable audit --start 2 created the name with start %s", info.Start)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail did not create the durable name: %+v, %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("tail after Ctrl-C: %v", err)
	}
	info, err := store.GetDurable(ctx, "audit")
	if err != nil || info.Cursor != 3 || info.Holder != "" {
		t.Fatalf("after tail: %+v, %v; want the event after 2 handled (cursor 3) and the name free", info, err)
	}
}

// statusLines hands each line written to it to a channel, so a test can
// wait for what a command says instead of sleeping.
type statusLines chan string

func (s statusLines) Write(p []byte) (int, error) {
	s <- string(p)
	return len(p), nil
}

// tail --durable --wait: a held name is waited for, and taken as soon as its
// holder lets go; without --wait the same call fails at once.
func TestSubscribeDurableWaitsForAHeldName(t *testing.T) {
	store, addr := serveStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"Billed"}}}}
	nop := func(context.Context, []contract.EventRecord) error { return nil }
	holder, err := store.StreamToDurable(ctx, "billing", q, nop)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if _, err := subscribeDurable(ctx, c, "billing", q, nop, nil, false, io.Discard); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Fatalf("without --wait: %v, want ErrDurableNameInUse", err)
	}
	status := make(statusLines, 4)
	type result struct {
		sub contract.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		sub, err := subscribeDurable(ctx, c, "billing", q, nop, nil, true, status)
		done <- result{sub, err}
	}()
	select {
	case line := <-status:
		if !strings.Contains(line, "billing is held by another subscriber; waiting") {
			t.Fatalf("status line %q", line)
		}
	case r := <-done:
		t.Fatalf("returned while the name was held: %v", r.err)
	case <-ctx.Done():
		t.Fatal("no word that it waits")
	}
	holder.Unsubscribe()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("after the holder let go: %v", r.err)
		}
		r.sub.Unsubscribe()
	case <-ctx.Done():
		t.Fatal("still waiting after the holder let go")
	}

	// A cancelled wait says what it waited for.
	holder, err = store.StreamToDurable(ctx, "billing", q, nop)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Unsubscribe()
	wctx, wcancel := context.WithCancel(ctx)
	wcancel()
	if _, err := subscribeDurable(wctx, c, "billing", q, nop, nil, true, io.Discard); err == nil || !strings.Contains(err.Error(), `"billing"`) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestLagTimeFormat(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{1234567 * time.Nanosecond, "1ms"},
		{999 * time.Millisecond, "999ms"},
		{3*time.Second + 449*time.Millisecond, "3.4s"},
		{90 * time.Second, "1m30s"},
	} {
		if got := lagTime(c.in); got != c.want {
			t.Errorf("lagTime(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
