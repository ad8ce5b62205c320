package load

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsOpsErrorsAndLatency(t *testing.T) {
	errConflict := errors.New("conflict")
	var n atomic.Int64
	res := Run(context.Background(), Options{
		Name: "t", Concurrency: 4, Duration: 5 * time.Second, Ops: 200,
		Classify: func(err error) string {
			if errors.Is(err, errConflict) {
				return "conflict"
			}
			return DefaultClassify(err)
		},
		NotFailures: []string{"conflict"},
	}, func(ctx context.Context, w int) (int, error) {
		i := n.Add(1)
		time.Sleep(time.Millisecond)
		switch i % 10 {
		case 0:
			return 0, errConflict
		case 5:
			return 0, errors.New("boom: details")
		}
		return 3, nil
	})
	if got := res.Ops + res.Errors["conflict"] + res.Errors["boom"]; got != 200 {
		t.Fatalf("ops %d + errors %v = %d, want 200", res.Ops, res.Errors, got)
	}
	if res.Events != 3*res.Ops {
		t.Errorf("events %d, want %d", res.Events, 3*res.Ops)
	}
	if res.Failures != res.Errors["boom"] || res.Errors["conflict"] == 0 {
		t.Errorf("failures %d, errors %v", res.Failures, res.Errors)
	}
	if res.Latency.P50 < 1 || res.Latency.Max < res.Latency.P99 || res.Latency.P99 < res.Latency.P50 {
		t.Errorf("latency %+v", res.Latency)
	}
	if res.OpsPerSec <= 0 {
		t.Errorf("ops/s %v", res.OpsPerSec)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	start := time.Now()
	res := Run(context.Background(), Options{Concurrency: 2, Duration: 200 * time.Millisecond}, func(ctx context.Context, w int) (int, error) {
		select {
		case <-ctx.Done(): // cut off by the end of the run: not an error
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
			return 1, nil
		}
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("run took %v", d)
	}
	if res.Ops == 0 || len(res.Errors) != 0 {
		t.Fatalf("ops %d errors %v", res.Ops, res.Errors)
	}
}

func TestPayloadSize(t *testing.T) {
	p := Payload(200, map[string]any{"w": 7})
	if len(p) != 200 {
		t.Fatalf("payload is %d bytes, want 200: %s", len(p), p)
	}
	var v map[string]any
	if err := json.Unmarshal(p, &v); err != nil || v["w"].(float64) != 7 {
		t.Fatalf("payload %s: %v", p, err)
	}
}

func TestRunRateExcludesTheWait(t *testing.T) {
	res := Run(context.Background(), Options{Concurrency: 2, Duration: 500 * time.Millisecond, Rate: 40}, func(ctx context.Context, w int) (int, error) {
		return 1, nil
	})
	if res.Ops < 10 || res.Ops > 30 {
		t.Errorf("%d ops in 0.5s at 40/s", res.Ops)
	}
	if res.Latency.P99 > 5 {
		t.Errorf("p99 %.3f ms: the pacing wait leaked into the latency", res.Latency.P99)
	}
}
