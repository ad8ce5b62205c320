package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
)

// TestMetricsEndpoint starts a real node (the serve command) with
// --metrics-addr and --pprof, drives appends, a live and a durable stream
// through the Go client, then scrapes /metrics and checks the names.
func TestMetricsEndpoint(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true))
	c := startServe(t, "--metrics-addr", metricsAddr, "--pprof")
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	ev := []contract.NewEvent{{Type: "t", Payload: json.RawMessage(`{"a":1}`)}, {Type: "t", Payload: json.RawMessage(`{"a":2}`)}}
	if _, err := c.Append(cctx, ev); err != nil {
		t.Fatalf("append: %v", err)
	}
	got := make(chan struct{}, 16)
	live, err := c.StreamAll(cctx, func(context.Context, []contract.EventRecord) error { got <- struct{}{}; return nil })
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer live.Unsubscribe()
	dur, err := c.StreamAllDurable(cctx, "billing", func(context.Context, []contract.EventRecord) error { got <- struct{}{}; return nil })
	if err != nil {
		t.Fatalf("durable stream: %v", err)
	}
	defer dur.Unsubscribe()
	// A filtered durable stream that nothing matches is caught up: lag 0,
	// although its cursor never moved.
	other := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"other"}}}}
	filtered, err := c.StreamToDurable(cctx, "filtered", other, func(context.Context, []contract.EventRecord) error { return nil })
	if err != nil {
		t.Fatalf("filtered durable stream: %v", err)
	}
	defer filtered.Unsubscribe()
	// A consumer that fails on everything, with retry 2 then park: each
	// batch is delivered twice, then parked.
	outbox, err := c.StreamAllDurable(cctx, "outbox", func(context.Context, []contract.EventRecord) error {
		return fmt.Errorf("downstream refused")
	}, contract.RetryThenPark(2, time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatalf("parking durable stream: %v", err)
	}
	defer outbox.Unsubscribe()
	q := contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"t"}}}}
	if _, err := c.AppendIf(cctx, ev[:1], q, 2); err != nil {
		t.Fatalf("append-if: %v", err)
	}
	if _, err := c.Query(cctx, q); err != nil {
		t.Fatalf("query: %v", err)
	}
	for range 2 { // the live and the durable stream each get the AppendIf batch
		select {
		case <-got:
		case <-cctx.Done():
			t.Fatal("no delivery")
		}
	}

	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		body = scrape(t, "http://"+metricsAddr+"/metrics")
		if (strings.Contains(body, `factstr_durable_stream_lag_events{name="filtered"} 0`) &&
			strings.Contains(body, `factstr_durable_stream_parked_events{name="outbox"} 3`)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range []string{
		"factstr_grpc_server_handled_total",
		"factstr_grpc_server_handling_seconds_bucket",
		`grpc_method="Query"`,
		`grpc_code="OK"`,
		"factstr_append_batch_events_bucket",
		"factstr_fsm_apply_batch_entries_bucket",
		"factstr_fsm_apply_batch_commands_bucket",
		"factstr_fsm_apply_duration_seconds_bucket",
		"factstr_fsm_commits_total",
		"factstr_raft_term",
		"factstr_raft_commit_index",
		"factstr_raft_applied_index",
		"factstr_raft_last_log_index",
		"factstr_fsm_applied_index",
		`factstr_raft_state{state="leader"} 1`,
		"factstr_raft_is_leader 1",
		"factstr_raft_leader_changes_total",
		"factstr_head_sequence_number 3",
		`factstr_bbolt_file_size_bytes{file="fsm"}`,
		`factstr_bbolt_file_size_bytes{file="raft"}`,
		"factstr_stream_subscriptions 4",
		`factstr_stream_subscribers{kind="live"} 1`,
		`factstr_stream_subscribers{kind="durable"} 3`,
		"factstr_stream_slow_subscribers_dropped_total 0",
		`factstr_durable_stream_lag_events{name="billing"} 0`,
		`factstr_durable_stream_lag_seconds{name="billing"} 0`,
		`factstr_durable_stream_lag_events{name="filtered"} 0`,
		`factstr_durable_stream_lag_seconds{name="filtered"} 0`,
		`factstr_durable_stream_redeliveries_total{name="outbox"} 2`,
		`factstr_durable_stream_parked_events_total{name="outbox"} 3`,
		`factstr_durable_stream_parked_events{name="outbox"} 3`,
		"factstr_node_behind_seconds",
		"factstr_node_behind_entries 0",
		"factstr_live_stream_lag_events 0",
		"factstr_live_streams_behind 0",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	if pp := scrape(t, "http://"+metricsAddr+"/debug/pprof/"); !strings.Contains(pp, "goroutine") {
		t.Errorf("/debug/pprof/ does not list profiles")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestGroupMemberLagMetric: a consumer group member served by the node
// reports its own lag, by member, and it returns to 0 once the member has
// handled what was appended.
func TestGroupMemberLagMetric(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true))
	c := startServe(t, "--metrics-addr", metricsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	handled := make(chan struct{}, 16)
	sub, err := c.StreamAllDurable(ctx, "ledger", func(context.Context, []contract.EventRecord) error {
		handled <- struct{}{}
		return nil
	}, contract.Group(contract.KeyEventType(), 2))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := c.Append(ctx, []contract.NewEvent{{Type: "a", Payload: json.RawMessage(`{}`)}, {Type: "b", Payload: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("the member handled nothing")
	}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		body = scrape(t, "http://"+metricsAddr+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "factstr_group_member_lag_events{member=") && strings.HasSuffix(line, `name="ledger"} 0`) {
				return
			}
		}
	}
	t.Fatalf("no factstr_group_member_lag_events line for the member of ledger at 0:\n%s", body)
}
