package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/bench/load"
)

// TestParseFlags: the defaults make bench-compare's documented run, and
// every flag lands in its own config field.
func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config{binDir: "bin", duration: 12 * time.Second, warmup: 2 * time.Second, concurrency: 64, connections: 4,
		payloadBytes: 200, contexts: 1000, systems: "factstr,etcd", profileOf: "append", scenario: "compare",
		memEvents: 1_000_000, memSubs: 100, rounds: 1}
	if c != want {
		t.Errorf("defaults\n%+v\nwant\n%+v", c, want)
	}

	c, err = parseFlags([]string{"--bin-dir", "b", "--dir", "d", "--keep", "--duration", "3s", "--warmup", "1s",
		"--concurrency", "8", "--connections", "2", "--payload-bytes", "50", "--contexts", "10", "--only", "read,single",
		"--systems", "factstr", "--profile-dir", "p", "--profile-workloads", "read", "--factstr-serve-flags", "--raft-log-store=wal",
		"--factstr-variants", "x=--y", "--scenario", "memory", "--memory-events", "5000", "--memory-subscribers", "3", "--json-out", "j.json", "--rounds", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = config{binDir: "b", dir: "d", keep: true, duration: 3 * time.Second, warmup: time.Second, concurrency: 8, connections: 2,
		payloadBytes: 50, contexts: 10, only: "read,single", systems: "factstr", profileDir: "p", profileOf: "read",
		serveFlags: "--raft-log-store=wal", variants: "x=--y", scenario: "memory", memEvents: 5000, memSubs: 3, jsonOut: "j.json", rounds: 3}
	if c != want {
		t.Errorf("parsed\n%+v\nwant\n%+v", c, want)
	}

	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--duration", "ten"}, `invalid value "ten" for flag -duration`},
		{[]string{"--concurrency", "many"}, `invalid value "many" for flag -concurrency`},
		{[]string{"--nodes", "3"}, "flag provided but not defined: -nodes"},
		{[]string{"--rounds", "0"}, "bad --rounds"},
		{[]string{"--rounds", "10"}, "bad --rounds"},
	} {
		var stderr bytes.Buffer
		if _, err := parseFlags(tt.args, &stderr); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("parseFlags(%q) = %v, want %q", tt.args, err, tt.msg)
		}
		if !strings.Contains(stderr.String(), "Usage of compare") {
			t.Errorf("parseFlags(%q) printed %q, want the usage", tt.args, stderr.String())
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp (exit 0)", err)
	}
}

func keys(ws []workload) []string {
	var k []string
	for _, w := range ws {
		k = append(k, w.key)
	}
	return k
}

// TestSelectWorkloads: --only picks whole names from a comma-separated
// list ("append" is not "append-if"), in the table's order.
func TestSelectWorkloads(t *testing.T) {
	tests := []struct {
		only string
		want []string
	}{
		{"", []string{"append", "append-if", "read", "single"}},
		{"append", []string{"append"}},
		{"append-if", []string{"append-if"}},
		{"single,read", []string{"read", "single"}},
		{"read,bogus", []string{"read"}},
		{"app", nil},
	}
	for _, tt := range tests {
		if got := keys(selectWorkloads(tt.only)); !slices.Equal(got, tt.want) {
			t.Errorf("selectWorkloads(%q) = %v, want %v", tt.only, got, tt.want)
		}
	}
}

// TestWorkloadTable: the rows pair the same operation on both systems
// and carry the targets the report checks.
func TestWorkloadTable(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range workloads {
		if seen[w.key] || w.title == "" {
			t.Errorf("workload %q: duplicate key or no title", w.key)
		}
		seen[w.key] = true
		fOn, eOn := argAfter(w.factstr, "--on"), argAfter(w.etcd, "--on")
		if fOn == "" || fOn != eOn {
			t.Errorf("%s: FACTSTR runs on %q, etcd on %q; want the same nodes", w.key, fOn, eOn)
		}
		if argAfter(w.factstr, "--workload") == "" || argAfter(w.etcd, "--workload") == "" {
			t.Errorf("%s: no --workload for both systems", w.key)
		}
		if w.ratioTarget == 0 && !w.p99Below && !w.p50Max {
			t.Errorf("%s has no target", w.key)
		}
	}
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestFactstrVariants: --factstr-variants adds a FACTSTR run per
// name=flags, each with the common serve flags first; malformed entries
// are skipped.
func TestFactstrVariants(t *testing.T) {
	tests := []struct {
		serve, variants string
		want            []variant
	}{
		{"", "", []variant{{"factstr", ""}}},
		{"--a", "", []variant{{"factstr", "--a"}}},
		{"", "wal=--raft-log-store=wal", []variant{{"factstr", ""}, {"factstr-wal", "--raft-log-store=wal"}}},
		{"--a", " wal=--x ; big= --y --z ;", []variant{{"factstr", "--a"}, {"factstr-wal", "--a --x"}, {"factstr-big", "--a --y --z"}}},
		{"", "noflags;=--anon;plain=", []variant{{"factstr", ""}, {"factstr-plain", ""}}},
	}
	for _, tt := range tests {
		got := factstrVariants(tt.serve, tt.variants)
		for i := range got { // startFactstr splits the flags with strings.Fields
			got[i].flags = strings.Join(strings.Fields(got[i].flags), " ")
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("factstrVariants(%q, %q) = %q, want %q", tt.serve, tt.variants, got, tt.want)
		}
	}
}

// TestCommonArgs: the load generator gets the configured load, except the
// single-client row, which runs one client on one connection.
func TestCommonArgs(t *testing.T) {
	c := config{duration: 5 * time.Second, warmup: 500 * time.Millisecond, concurrency: 32, connections: 3, payloadBytes: 100, contexts: 7}
	for _, tt := range []struct {
		single     bool
		conc, conn string
	}{{false, "32", "3"}, {true, "1", "1"}} {
		want := []string{"--json", "--duration", "5s", "--warmup", "500ms", "--concurrency", tt.conc, "--connections", tt.conn,
			"--payload-bytes", "100", "--contexts", "7"}
		if got := c.commonArgs(workload{single: tt.single}); !slices.Equal(got, want) {
			t.Errorf("single=%v: %q, want %q", tt.single, got, want)
		}
	}
}

func TestLeaderIndex(t *testing.T) {
	for id, want := range map[string]int{"f1": 0, "f2": 1, "f3": 2, "f4": 0, "f0": 0, "": 0, "e2": 0, "n3": 0} {
		if got := leaderIndex(id); got != want {
			t.Errorf("leaderIndex(%q) = %d, want %d", id, got, want)
		}
	}
}

// TestStatCPUSeconds: utime+stime in clock ticks (USER_HZ 100) from the
// fields after the command name, whatever that name holds.
func TestStatCPUSeconds(t *testing.T) {
	tail := "S 1 2 3 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 5 1000 10"
	tests := []struct {
		stat string
		want float64
	}{
		{"42 (factstr-node) " + tail, 3.8},
		{"42 (a b) c) " + tail, 3.8}, // a command named "a b) c"
		{"42 (x) S 1 2", 0},          // truncated
		{"42 (x) S 1 2 3 0 -1 4194560 100 0 0 0 7 1", 0.08},
	}
	for _, tt := range tests {
		if got := statCPUSeconds(tt.stat); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("statCPUSeconds(%q) = %v, want %v", tt.stat, got, tt.want)
		}
	}
	// This process, after burning some CPU.
	before := cpuSeconds(os.Getpid())
	for start := time.Now(); cpuSeconds(os.Getpid())-before < 0.02; {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("cpuSeconds of this process stayed at %v while it spun", before)
		}
	}
	if got := cpuSeconds(-1); got != 0 {
		t.Errorf("cpuSeconds of no process = %v", got)
	}
}

// TestStatusKiB reads the KiB fields of /proc/<pid>/status that the memory
// scenario reports.
func TestStatusKiB(t *testing.T) {
	status := "Name:\tfactstr-node\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nRssAnon:\t   100000 kB\nRssFile:\t    23456 kB\nThreads:\t12\n"
	for field, want := range map[string]int64{"VmRSS": 123456, "RssAnon": 100000, "RssFile": 23456, "VmPeak": 900000, "Threads": 12, "VmSwap": 0, "Vm": 0} {
		if got := statusKiB(status, field); got != want {
			t.Errorf("statusKiB(%s) = %d, want %d", field, got, want)
		}
	}
	// The real file, of this process.
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ps := []*proc{{cmd: &exec.Cmd{Process: self}}}
	if r, anon := rss(ps), statusField(ps, "RssAnon"); r[0] <= 0 || anon[0] <= 0 {
		t.Errorf("this process: VmRSS %d KiB, RssAnon %d KiB", r[0], anon[0])
	}
	// From one reading, the parts add up to the whole.
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	whole := statusKiB(string(b), "VmRSS")
	parts := statusKiB(string(b), "RssAnon") + statusKiB(string(b), "RssFile") + statusKiB(string(b), "RssShmem")
	if whole <= 0 || parts != whole {
		t.Errorf("/proc/self/status: VmRSS %d KiB, RssAnon+RssFile+RssShmem %d KiB", whole, parts)
	}
}

// TestWithCPU: the CPU figures per operation count the warm-up at the
// measured rate; a failed run passes its error through.
func TestWithCPU(t *testing.T) {
	r, err := withCPU(nil, time.Second, func() (*load.Result, float64, error) {
		return &load.Result{Ops: 900, OpsPerSec: 100, Seconds: 9}, 0.5, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 100 ops/s over 9 s measured + 1 s warm-up = 1000 operations.
	for k, want := range map[string]float64{"client_cpu_seconds": 0.5, "client_cpu_us_per_op": 500, "server_cpu_seconds": 0, "server_cpu_us_per_op": 0} {
		if got, ok := r.Extra[k]; !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("Extra[%s] = %v (present %v), want %v", k, got, ok, want)
		}
	}

	r, err = withCPU(nil, time.Second, func() (*load.Result, float64, error) {
		return &load.Result{Extra: map[string]float64{"kept": 1}}, 0.1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Extra["client_cpu_us_per_op"]; ok || r.Extra["kept"] != 1 || r.Extra["client_cpu_seconds"] != 0.1 {
		t.Errorf("no operations: Extra %v; want the totals, no per-op figures, earlier keys kept", r.Extra)
	}

	boom := errors.New("load failed")
	if r, err := withCPU(nil, 0, func() (*load.Result, float64, error) { return nil, 0, boom }); r != nil || !errors.Is(err, boom) {
		t.Errorf("failed run: %v, %v", r, err)
	}
}

// TestScrapeMetrics reads a node's /metrics the way runFactstr uses it:
// samples without spaces in their labels, keyed by name and labels.
func TestScrapeMetrics(t *testing.T) {
	body := `# HELP factstr_fsm_apply_batch_entries entries per batch
# TYPE factstr_fsm_apply_batch_entries histogram
factstr_fsm_apply_batch_entries_sum 1234
factstr_fsm_apply_batch_entries_count 56
factstr_propose_batch_commands_count{kind="entry"} 7
factstr_bbolt_file_size_bytes{file="fsm"} 1.048576e+06
factstr_bbolt_file_size_bytes{file="raft"} 2.097152e+06
factstr_with_timestamp 3 1700000000000
factstr_spaced{a="x y"} 4
factstr_not_a_number abc
go_goroutines 42
`
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")

	got := scrapeMetrics(addr)
	want := map[string]float64{
		"factstr_fsm_apply_batch_entries_sum":                1234,
		"factstr_fsm_apply_batch_entries_count":              56,
		`factstr_propose_batch_commands_count{kind="entry"}`: 7,
		`factstr_bbolt_file_size_bytes{file="fsm"}`:          1 << 20,
		`factstr_bbolt_file_size_bytes{file="raft"}`:         2 << 20,
		"go_goroutines": 42,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("scrapeMetrics\n%v\nwant\n%v", got, want)
	}

	labelled := scrapeLabelled(addr, "factstr_bbolt_file_size_bytes")
	if fmt.Sprint(labelled) != fmt.Sprint(map[string]float64{`{file="fsm"}`: 1 << 20, `{file="raft"}`: 2 << 20}) {
		t.Errorf("scrapeLabelled = %v", labelled)
	}
	if got := scrapeLabelled(addr, "factstr_bbolt_file_size"); len(got) != 0 {
		t.Errorf("scrapeLabelled of a name prefix = %v, want nothing", got)
	}

	hs.Close()
	if got := scrapeMetrics(addr); len(got) != 0 {
		t.Errorf("scrapeMetrics of a node that is gone = %v, want empty", got)
	}
	if got := scrapeLabelled(addr, "x"); len(got) != 0 {
		t.Errorf("scrapeLabelled of a node that is gone = %v, want empty", got)
	}
}

// TestLoadRun runs a load command (a script standing in for the load
// generator) and decodes its JSON result; a failing command and an
// answer that is not a result are errors that say which.
func TestLoadRun(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good := script("good", `echo progress >&2; echo '{"name":"append '"$2"'","ops":10,"ops_per_sec":5.5,"latency":{"p99_ms":2.5},"errors":{"UNAVAILABLE":2}}'`)
	r, cpu, err := loadRun(ctx, good, "--workload", "x")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "append x" || r.Ops != 10 || r.OpsPerSec != 5.5 || r.Latency.P99 != 2.5 || r.Errors["UNAVAILABLE"] != 2 || cpu < 0 {
		t.Errorf("loadRun = %+v, cpu %v", r, cpu)
	}

	if _, _, err := loadRun(ctx, script("fails", "exit 3"), "bench", "--on", "leader"); err == nil ||
		!strings.Contains(err.Error(), "fails bench --on leader") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing command: %v", err)
	}
	if _, _, err := loadRun(ctx, script("garbage", "echo not json"), "x"); err == nil || !strings.Contains(err.Error(), `decode result "not json\n"`) {
		t.Errorf("garbage answer: %v", err)
	}
}

// TestRunNeedsBinaries: run refuses to start without the binaries it
// would start, and needs the etcd one only when etcd is to run.
func TestRunNeedsBinaries(t *testing.T) {
	bin := t.TempDir()
	c, _ := parseFlags([]string{"--bin-dir", bin}, io.Discard)
	if err := run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "factstr-node not found in "+bin) {
		t.Fatalf("no binaries: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "factstr-node"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "factstr-etcd-bench not found in "+bin) {
		t.Fatalf("no etcd binary: %v", err)
	}
}

func res(name string, opsPerSec, p50, p99 float64, errs map[string]int64, extra map[string]float64) *load.Result {
	return &load.Result{Name: name, OpsPerSec: opsPerSec, Ops: 1, Latency: load.Latency{P50: p50, P99: p99}, Errors: errs, Extra: extra}
}

func testReport() *report {
	return &report{
		Machine: map[string]string{"cpu": "Test CPU", "nproc": "2"},
		Config:  map[string]any{"concurrency": 64, "payload_bytes": 200, "duration": "12s"},
		LoadAvg: map[string]string{"before": "0.1 0.2 0.3", "between": "1", "after": "2"},
		Results: map[string]map[string]*load.Result{
			// meets every target
			"append": {"factstr": res("append", 3500, 1, 4, nil, nil), "etcd": res("put", 1000, 2, 8, map[string]int64{"Unavailable": 3}, nil)},
			// misses them: 1.2x < 3x, p99 above etcd's
			"append-if": {"factstr": res("append-if", 1200, 3, 9, map[string]int64{"a": 1, "b": 2}, nil), "etcd": res("txn", 1000, 2, 6, nil, nil)},
			// FACTSTR alone (etcd not run)
			"read": {"factstr": res("query", 5000, 0.5, 1.5, nil, nil)},
			// p50 exactly etcd's: "no worse" holds
			"single": {"factstr": res("append", 100, 2, 3, nil, nil), "etcd": res("put", 200, 2, 2, nil, nil)},
		},
	}
}

// TestPrintTable: the report's table computes each ratio and marks each
// target met or missed; a workload run on one system only gets a row of
// its own.
func TestPrintTable(t *testing.T) {
	var out bytes.Buffer
	printTable(&out, workloads, testReport(), variant{"factstr", "--raft-log-store=wal"})
	s := out.String()
	for _, want := range []string{
		"factstr vs etcd, 3 nodes each on loopback, fsync on both, 64 clients, 200-byte payloads, 12s per run",
		"factstr serve flags: --raft-log-store=wal",
		"machine: Test CPU, 2 cores; load average before 0.1 0.2 0.3, between 1, after 2",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in\n%s", want, s)
		}
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(s, "\n") {
		for _, w := range workloads {
			if strings.HasPrefix(strings.TrimSpace(line), w.title) {
				rows[w.key] = strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), w.title))
			}
		}
	}
	want := map[string][]string{
		"append":    {"3500", "1000", "3.50x", "1.00", "2.00", "4.00", "8.00", "0.50x", "0/3", "ops>=3.0x:yes", "p99<etcd:yes"},
		"append-if": {"1200", "1000", "1.20x", "3.00", "2.00", "9.00", "6.00", "1.50x", "3/0", "ops>=3.0x:NO", "p99<etcd:NO"},
		"read":      {"(query", "only)", "5000", "0.50", "1.50", "0"},
		"single":    {"100", "200", "0.50x", "2.00", "2.00", "3.00", "2.00", "1.50x", "0/0", "p50<=etcd:yes"},
	}
	for k, w := range want {
		if !slices.Equal(rows[k], w) {
			t.Errorf("row %s: %q, want %q", k, rows[k], w)
		}
	}

	out.Reset()
	printTable(&out, workloads[:1], testReport(), variant{"factstr", ""})
	if strings.Contains(out.String(), "serve flags") {
		t.Errorf("a variant without flags prints a flags line:\n%s", out.String())
	}
}

// TestPrintDetails: errors per system, CPU per operation, and the group
// commit figures where the leader's metrics had them.
func TestPrintDetails(t *testing.T) {
	rep := testReport()
	rep.Results["append"]["factstr"].Extra = map[string]float64{"server_cpu_us_per_op": 120, "server_cpu_seconds": 4.2,
		"client_cpu_us_per_op": 30, "client_cpu_seconds": 1.05, "leader_fsm_batches": 500, "leader_entries_per_batch": 2.5,
		"leader_commands_per_batch": 40, "leader_fsm_batch_ms": 0.75, "leader_commands_per_entry": 16, "leader_entries_per_store_logs": 1.5}
	rep.Profiles = []string{"p/a.pb.gz", "p/b.pb.gz"}
	var out bytes.Buffer
	printDetails(&out, workloads, rep, []variant{{"factstr", ""}})
	s := out.String()
	for _, want := range []string{
		"  etcd append errors: map[Unavailable:3]",
		"  factstr append-if errors: map[a:1 b:2]",
		"  append     factstr      servers   120 µs/op (  4.20s)  client    30 µs/op (  1.05s)",
		"  append     factstr         2.5 entries,   40.0 commands per batch (500 batches, 0.75 ms each);   16.0 commands per Raft entry,   1.5 entries per Raft log write",
		"profiles (node-: the leader, a follower for read; other<i>-: the other nodes): p/a.pb.gz p/b.pb.gz",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in\n%s", want, s)
		}
	}
	// Group commit lines only for runs with batches.
	if n := strings.Count(s, "commands per batch"); n != 1 {
		t.Errorf("%d group commit lines, want 1:\n%s", n, s)
	}
	// CPU lines for every result (7 in the report).
	if n := strings.Count(s, "µs/op"); n != 2*7 {
		t.Errorf("%d CPU figures, want 14:\n%s", n, s)
	}
}

func TestHelpers(t *testing.T) {
	if yes(true) != "yes" || yes(false) != "NO" {
		t.Error("yes")
	}
	if got := errs(&load.Result{Errors: map[string]int64{"a": 2, "b": 5}}); got != "7" {
		t.Errorf("errs = %s, want 7", got)
	}
	if got := errs(&load.Result{}); got != "0" {
		t.Errorf("errs of none = %s", got)
	}
	if la := strings.Fields(loadavg()); len(la) != 3 {
		t.Errorf("loadavg = %q, want three figures", la)
	}
	m := machine(t.TempDir())
	if m["nproc"] == "" || !strings.HasPrefix(m["go"], "go") || !strings.Contains(m["os"], "/") {
		t.Errorf("machine = %v", m)
	}
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("starting\nserver ready to serve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !logHas(p, "ready") || logHas(p, "failed") || logHas(p+".missing", "ready") {
		t.Error("logHas")
	}
}

// TestRounds: with several rounds the table takes each system's median
// round, and the round lines give every round's ratio and the median of
// the ratios, against which the target is checked.
func TestRounds(t *testing.T) {
	res := func(name string, ops float64) *load.Result { return &load.Result{Name: name, OpsPerSec: ops} }
	rounds := []map[string]map[string]*load.Result{
		{"append": {"factstr": res("r1", 3000), "etcd": res("e1", 1000)}},
		{"append": {"factstr": res("r2", 2000), "etcd": res("e2", 1000)}},
		{"append": {"factstr": res("r3", 5000), "etcd": res("e3", 2000)}, "read": {"factstr": res("q3", 7)}},
	}
	med := medianRounds(rounds)
	if got := med["append"]["factstr"].Name; got != "r1" {
		t.Errorf("median factstr round %s, want r1 (3000 of 2000, 3000, 5000)", got)
	}
	if got := med["append"]["etcd"].Name; got != "e2" {
		t.Errorf("median etcd round %s, want e2 (1000, 1000, 2000: ties keep round order)", got)
	}
	if got := med["read"]["factstr"].Name; got != "q3" {
		t.Errorf("a workload in one round only: %s, want q3", got)
	}
	ratios, m := roundRatios(rounds, "append", "factstr")
	if !slices.Equal(ratios, []float64{3, 2, 2.5}) || m != 2.5 {
		t.Errorf("ratios %v median %v, want [3 2 2.5] median 2.5", ratios, m)
	}
	if r, m := roundRatios(rounds, "read", "factstr"); r != nil || m != 0 {
		t.Errorf("no etcd: ratios %v median %v, want none", r, m)
	}

	rep := &report{Rounds: rounds}
	var out bytes.Buffer
	printRounds(&out, workloads, rep, variant{key: "factstr"})
	for _, want := range []string{
		"factstr: ops/s ratio to etcd in each of 3 rounds",
		"3.00x 2.00x 2.50x  median 2.50x  ops>=3.0x:NO",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Linearizable read") {
		t.Errorf("a workload without etcd figures printed a ratio line:\n%s", out.String())
	}
	out.Reset()
	printRounds(&out, workloads, &report{Rounds: rounds[:1]}, variant{key: "factstr"})
	if out.Len() != 0 {
		t.Errorf("one round printed round lines:\n%s", out.String())
	}
}
