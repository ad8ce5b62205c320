// Package load runs a closed-loop load: a fixed number of workers each
// issue one operation after another for a duration or an operation count,
// with latencies recorded in HdrHistograms. The FACTSTR load tool
// (factstr-node bench) and the etcd side of bench/compare both use it, so
// both systems are measured the same way.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options shape a run.
type Options struct {
	// Name labels the run in the report (e.g. "append").
	Name string
	// Concurrency is the number of workers, each with one operation in
	// flight (default 1).
	Concurrency int
	// Duration bounds the run (default 10s); the run also stops after Ops
	// operations when Ops > 0.
	Duration time.Duration
	Ops      int64
	// Rate, if positive, paces all workers together to this many
	// operations per second; the wait is not part of the latency.
	Rate float64
	// Warmup runs the workload this long before measuring.
	Warmup time.Duration
	// Progress, if set, gets a line every ProgressEvery (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Classify names an error's kind for the report ("conflict",
	// "unavailable", ...). Kinds listed in NotFailures (e.g. "conflict") are
	// counted but are not failures.
	Classify    func(error) string
	NotFailures []string
}

// Op performs one operation for worker and returns how many events (or
// keys) it wrote or read.
type Op func(ctx context.Context, worker int) (events int, err error)

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Result is one run's outcome. Ops counts successful operations; latency
// percentiles are over successful operations.
type Result struct {
	Name         string             `json:"name"`
	Concurrency  int                `json:"concurrency"`
	Seconds      float64            `json:"seconds"`
	Ops          int64              `json:"ops"`
	Events       int64              `json:"events"`
	OpsPerSec    float64            `json:"ops_per_sec"`
	EventsPerSec float64            `json:"events_per_sec"`
	Latency      Latency            `json:"latency"`
	Errors       map[string]int64   `json:"errors,omitempty"`
	Failures     int64              `json:"failures"`
	Extra        map[string]float64 `json:"extra,omitempty"`
	// Hist is the merged latency histogram (µs), for callers that merge
	// several runs; not serialized.
	Hist *hdrhistogram.Histogram `json:"-"`
}

// NewHistogram returns a histogram of microseconds from 1µs to 5 minutes
// with 3 significant digits.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
}

// LatencyOf reads the percentiles of h (µs) in milliseconds.
func LatencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(v int64) float64 { return float64(v) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

type worker struct {
	hist   *hdrhistogram.Histogram
	errs   map[string]int64
	ops    atomic.Int64
	events atomic.Int64
	_      [64]byte // keep workers' counters on separate cache lines
}

// Run runs op under opts until the duration or op count is reached, or ctx
// ends.
func Run(ctx context.Context, opts Options, op Op) Result {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Duration <= 0 {
		opts.Duration = 10 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	if opts.Classify == nil {
		opts.Classify = DefaultClassify
	}
	if opts.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, opts.Warmup)
		var wg sync.WaitGroup
		for w := range opts.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for wctx.Err() == nil {
					_, _ = op(wctx, w)
				}
			}()
		}
		wg.Wait()
		cancel()
	}

	rctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	deadline, _ := rctx.Deadline()
	workers := make([]*worker, opts.Concurrency)
	var issued atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{hist: NewHistogram(), errs: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			var next time.Time
			if opts.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(opts.Concurrency) / opts.Rate)
				next = start.Add(time.Duration(rand.Int64N(int64(interval) + 1))) // spread the workers
			}
			for rctx.Err() == nil {
				if opts.Ops > 0 && issued.Add(1) > opts.Ops {
					return
				}
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						select {
						case <-time.After(d):
						case <-rctx.Done():
							return
						}
					}
					next = next.Add(interval)
				}
				t0 := time.Now()
				n, err := op(rctx, i)
				took := time.Since(t0)
				if err != nil {
					if rctx.Err() != nil || time.Until(deadline) < 100*time.Millisecond {
						// Cut off by the end of the run (the server may see
						// the deadline pass a moment before the client does):
						// not an error.
						return
					}
					w.errs[opts.Classify(err)]++
					continue
				}
				_ = w.hist.RecordValue(max(took.Microseconds(), 1))
				w.ops.Add(1)
				w.events.Add(int64(n))
			}
		}()
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if opts.Progress == nil {
			<-stopProgress
			return
		}
		t := time.NewTicker(opts.ProgressEvery)
		defer t.Stop()
		var lastOps int64
		last := start
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				var ops int64
				for _, w := range workers {
					ops += w.ops.Load()
				}
				fmt.Fprintf(opts.Progress, "%s %5.1fs  %9d ops  %9.0f ops/s\n", opts.Name, now.Sub(start).Seconds(), ops, float64(ops-lastOps)/now.Sub(last).Seconds())
				lastOps, last = ops, now
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	<-progressDone

	res := Result{Name: opts.Name, Concurrency: opts.Concurrency, Seconds: elapsed.Seconds(), Errors: map[string]int64{}, Hist: NewHistogram()}
	for _, w := range workers {
		res.Hist.Merge(w.hist)
		res.Ops += w.ops.Load()
		res.Events += w.events.Load()
		for k, v := range w.errs {
			res.Errors[k] += v
			if !slices.Contains(opts.NotFailures, k) {
				res.Failures += v
			}
		}
	}
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	res.EventsPerSec = float64(res.Events) / elapsed.Seconds()
	res.Latency = LatencyOf(res.Hist)
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	return res
}

// DefaultClassify names an error by its text's first words.
func DefaultClassify(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if i := strings.IndexAny(s, ":("); i > 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return strings.TrimSpace(s)
}

// Print writes a human-readable report of res.
func Print(w io.Writer, res Result) {
	fmt.Fprintf(w, "%s: %d workers, %.1fs\n", res.Name, res.Concurrency, res.Seconds)
	fmt.Fprintf(w, "  ops        %d (%.0f ops/s)\n", res.Ops, res.OpsPerSec)
	fmt.Fprintf(w, "  events     %d (%.0f events/s)\n", res.Events, res.EventsPerSec)
	l := res.Latency
	fmt.Fprintf(w, "  latency ms p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	for _, k := range slices.Sorted(maps.Keys(res.Extra)) {
		fmt.Fprintf(w, "  %-10s %.3f\n", k, res.Extra[k])
	}
	if len(res.Errors) == 0 {
		fmt.Fprintf(w, "  errors     none\n")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(res.Errors)) {
		fmt.Fprintf(w, "  error      %-40s %d\n", k, res.Errors[k])
	}
}

// PrintJSON writes res as one JSON object.
func PrintJSON(w io.Writer, res Result) error {
	return json.NewEncoder(w).Encode(res)
}

// Payload returns a JSON object of about size bytes: the given fields plus
// a "pad" string that fills it up.
func Payload(size int, fields map[string]any) []byte {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["pad"] = ""
	b, _ := json.Marshal(fields)
	if pad := size - len(b); pad > 0 {
		fields["pad"] = strings.Repeat("x", pad)
		b, _ = json.Marshal(fields)
	}
	return b
}
