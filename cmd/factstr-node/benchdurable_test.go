package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/bench/load"
	"github.com/factstr/factstr-go/client"
)

// The durable workload against a real node: every event appended while
// measuring is handled by every consumer once, the lag percentiles are
// ordered and positive, and the run's names are deleted afterwards.
func TestBenchDurableWorkload(t *testing.T) {
	c := startServe(t)
	for _, tc := range []struct {
		name  string
		flags benchFlags
		names int // each appended event handled once per name
	}{
		{"two consumers", benchFlags{consumers: 2}, 2},
		{"a group of three", benchFlags{consumers: 1, groupMembers: 3}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			f := tc.flags
			f.batch, f.payloadBytes, f.warmup = 2, 40, 200*time.Millisecond
			opts := load.Options{Name: "durable", Concurrency: 4, Duration: time.Second, Rate: 100}
			var cutOff atomic.Int64
			res, err := f.durable(ctx, []*client.Client{c}, opts, runID(), &cutOff)
			if err != nil {
				t.Fatal(err)
			}
			x := res.Extra
			if res.Ops == 0 || x["appended_events_measured"] == 0 {
				t.Fatalf("nothing appended while measuring: %+v", res)
			}
			// An append cut off at the end may commit unacknowledged: its
			// events are handled on top of the measured ones.
			if x["handled_events"] < float64(tc.names)*x["appended_events_measured"] || x["missing_events"] != 0 || x["duplicate_events"] != 0 {
				t.Fatalf("handled %v of %v appended events (missing %v, duplicates %v); want each event once per name (%d)",
					x["handled_events"], x["appended_events_measured"], x["missing_events"], x["duplicate_events"], tc.names)
			}
			if !(x["consumer_lag_p50_ms"] > 0 && x["consumer_lag_p50_ms"] <= x["consumer_lag_p99_ms"] && x["consumer_lag_p99_ms"] <= x["consumer_lag_max_ms"]) {
				t.Fatalf("lag percentiles p50 %v, p99 %v, max %v", x["consumer_lag_p50_ms"], x["consumer_lag_p99_ms"], x["consumer_lag_max_ms"])
			}
			if x["handled_events_per_sec"] <= 0 || x["consumers"] != float64(tc.names) || x["group_members"] != float64(f.groupMembers) {
				t.Fatalf("extra %+v", x)
			}
			infos, err := c.ListDurable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range infos {
				if strings.HasPrefix(d.Name, "bench-") {
					t.Errorf("the run left its durable name %q", d.Name)
				}
			}
		})
	}
}

func TestBenchRefusesNoConsumers(t *testing.T) {
	err := cmdBench(context.Background(), []string{"--workload", "durable", "--consumers", "0", "--addr", "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "--consumers") {
		t.Fatalf("--consumers 0: %v, want a usage error naming it", err)
	}
}
