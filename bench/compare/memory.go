package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/factstr/factstr-go/bench/load"
)

// runMemory is the memory scenario: on a FACTSTR cluster, the latency of a
// one-context query on a follower with about 10k events in the log and
// again with --memory-events, then each node's RSS (VmRSS from
// /proc/<pid>/status) with that log and --memory-subscribers live
// subscribers receiving a steady write load.
func runMemory(ctx context.Context, c config) error {
	bin := filepath.Join(c.binDir, "factstr-node")
	fc, err := startFactstr(ctx, c, "factstr", c.serveFlags)
	if fc != nil {
		defer stopAll(fc.procs)
	}
	if err != nil {
		return err
	}
	addr := strings.Join(fc.grpcAddrs, ",")
	bench := func(args ...string) (*load.Result, error) {
		r, _, err := loadRun(ctx, bin, append([]string{"bench", "--addr", addr, "--json", "--payload-bytes", fmt.Sprint(c.payloadBytes)}, args...)...)
		return r, err
	}
	fill := func(total int) error {
		ops := total / 100
		if ops <= 0 {
			return nil
		}
		fmt.Fprintf(os.Stderr, "appending %d events in batches of 100\n", ops*100)
		_, err := bench("--workload", "append", "--on", "leader", "--batch", "100", "--ops", fmt.Sprint(ops),
			"--concurrency", "8", "--connections", "2", "--warmup", "0s", "--duration", "40m", "--progress-every", "10s")
		return err
	}
	query := func() (*load.Result, error) {
		return bench("--workload", "query", "--on", "follower", "--concurrency", "4", "--connections", "2",
			"--contexts", "1000", "--warmup", c.warmup.String(), "--duration", c.duration.String())
	}
	out := map[string]any{"machine": machine(c.dir), "load_average_before": loadavg()}

	if err := fill(10_000); err != nil {
		return err
	}
	small, err := query()
	if err != nil {
		return err
	}
	head := 10_000 + 1000
	if err := fill(c.memEvents - head - 1000); err != nil {
		return err
	}
	large, err := query()
	if err != nil {
		return err
	}
	out["query_10k"], out["query_large"] = small, large
	rssLoaded := rss(fc.procs)
	anon, file := statusField(fc.procs, "RssAnon"), statusField(fc.procs, "RssFile")
	files := make([]string, len(fc.procs))
	for i, m := range fc.metricsAddrs {
		ms := scrapeLabelled(m, "factstr_bbolt_file_size_bytes")
		files[i] = fmt.Sprintf("fsm.db %.0f MiB, raft.db %.0f MiB", ms[`{file="fsm"}`]/(1<<20), ms[`{file="raft"}`]/(1<<20))
	}

	// Subscribers while a steady write load runs; sample RSS every second.
	var mu sync.Mutex
	peak := make([]int64, len(fc.procs))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				for i, v := range rss(fc.procs) {
					peak[i] = max(peak[i], v)
				}
				mu.Unlock()
			}
		}
	}()
	stream, err := bench("--workload", "stream", "--subscribers", fmt.Sprint(c.memSubs), "--concurrency", "8",
		"--connections", "4", "--rate", "500", "--warmup", c.warmup.String(), "--duration", c.duration.String())
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	out["stream"] = stream
	out["load_average_after"] = loadavg()

	fmt.Printf("\nFACTSTR memory and query-flatness scenario (3 nodes, %d-byte payloads)\n", c.payloadBytes)
	fmt.Printf("machine: %s; load average before %s, after %s\n\n", out["machine"].(map[string]string)["cpu"], out["load_average_before"], out["load_average_after"])
	for _, q := range []struct {
		name string
		r    *load.Result
	}{{"~11k events", small}, {fmt.Sprintf("~%d events", c.memEvents), large}} {
		fmt.Printf("one-context query on a follower, log of %-16s %7.0f ops/s  p50 %.2f ms  p99 %.2f ms\n", q.name+":", q.r.OpsPerSec, q.r.Latency.P50, q.r.Latency.P99)
	}
	fmt.Printf("\nstream: %d subscribers, %.0f appends/s: delivered %.0f events/s, delivery p50 %.2f ms p99 %.2f ms max %.2f ms, missing %.0f\n",
		c.memSubs, stream.OpsPerSec, stream.Extra["delivered_events_per_sec"], stream.Extra["delivery_p50_ms"],
		stream.Extra["delivery_p99_ms"], stream.Extra["delivery_max_ms"], stream.Extra["missing_events"])
	fmt.Println("\nnode RSS (MiB)   after loading (anonymous + file-backed)   peak with subscribers    files")
	rsMem := make(map[string]any)
	for i, p := range fc.procs {
		fmt.Printf("  %-14s %6.0f (%4.0f + %4.0f) %28.0f    %s\n", p.name, float64(rssLoaded[i])/1024, float64(anon[i])/1024, float64(file[i])/1024, float64(peak[i])/1024, files[i])
		rsMem[p.name] = map[string]any{"loaded_kib": rssLoaded[i], "anon_kib": anon[i], "file_kib": file[i], "peak_with_subscribers_kib": peak[i], "files": files[i]}
	}
	out["rss"] = rsMem
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}

// rss returns each process's VmRSS in KiB.
func rss(ps []*proc) []int64 { return statusField(ps, "VmRSS") }

// statusField returns a KiB field of each process's /proc/<pid>/status.
func statusField(ps []*proc, field string) []int64 {
	out := make([]int64, len(ps))
	for i, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		out[i] = statusKiB(string(b), field)
	}
	return out
}

// statusKiB reads a field such as "VmRSS:	  1234 kB" from the text of
// /proc/<pid>/status (0 if it is not there).
func statusKiB(status, field string) int64 {
	var n int64
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
		}
	}
	return n
}
