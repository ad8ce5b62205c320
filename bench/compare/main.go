// Command compare starts, on loopback, a 3-node FACTSTR cluster (real
// factstr-node processes) and then a 3-node etcd cluster (bench/etcd, on
// etcd's embed package), each with its data directories on the same disk
// and fsync on, runs the same workloads against both with the same load
// generator (bench/load) and prints both and their ratios.
//
//	make bench-compare                      # builds the binaries, then runs this
//	go run ./bench/compare --bin-dir bin --duration 10s --profile-dir /tmp/prof
//
// Everything is bounded in time and stops by itself.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/bench/load"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/internal/freeport"
)

type config struct {
	binDir       string
	dir          string
	keep         bool
	duration     time.Duration
	warmup       time.Duration
	concurrency  int
	connections  int
	payloadBytes int
	contexts     int
	only         string
	systems      string
	profileDir   string
	profileOf    string
	jsonOut      string
	scenario     string
	serveFlags   string
	variants     string
	memEvents    int
	memSubs      int
	rounds       int
}

// workload is one row: the same operation on both systems.
type workload struct {
	key, title       string
	factstr, etcd    []string // extra arguments of each system's load command
	single           bool     // one client, one connection
	ratioTarget      float64  // FACTSTR ops/s must be >= this x etcd's (0: none)
	p99Below, p50Max bool     // FACTSTR p99 below etcd's; FACTSTR p50 no worse
}

var workloads = []workload{
	{key: "append", title: "Append vs Put (new key)", factstr: []string{"--workload", "append", "--on", "any"}, etcd: []string{"--workload", "put", "--on", "any"}, ratioTarget: 3, p99Below: true},
	{key: "append-if", title: "AppendIf vs Txn (1,000 contexts)", factstr: []string{"--workload", "append-if", "--on", "any"}, etcd: []string{"--workload", "txn", "--on", "any"}, ratioTarget: 3, p99Below: true},
	{key: "read", title: "Linearizable read on a follower", factstr: []string{"--workload", "query", "--on", "follower"}, etcd: []string{"--workload", "get", "--on", "follower"}, ratioTarget: 1.5},
	{key: "single", title: "Single-client Append vs Put", factstr: []string{"--workload", "append", "--on", "any"}, etcd: []string{"--workload", "put", "--on", "any"}, single: true, p50Max: true},
}

type report struct {
	Machine  map[string]string                  `json:"machine"`
	Config   map[string]any                     `json:"config"`
	Results  map[string]map[string]*load.Result `json:"results"` // workload -> system -> result
	LoadAvg  map[string]string                  `json:"load_average"`
	Profiles []string                           `json:"profiles,omitempty"`
	// Rounds holds every round's results when --rounds > 1; Results then
	// holds, per workload and system, the round with the median ops/s.
	Rounds []map[string]map[string]*load.Result `json:"rounds,omitempty"`
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // the flag package has said what was wrong
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	if err := run(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags parses the command line (without the program name); usage
// and errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding factstr-node and factstr-etcd-bench")
	fs.StringVar(&c.dir, "dir", "", "directory for both clusters' data (default: a new temporary directory)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directory")
	fs.DurationVar(&c.duration, "duration", 12*time.Second, "measured time per workload and system")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up per workload and system")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent clients")
	fs.IntVar(&c.connections, "connections", 4, "client instances (connections) the clients share")
	fs.IntVar(&c.payloadBytes, "payload-bytes", 200, "JSON payload / value size")
	fs.IntVar(&c.contexts, "contexts", 1000, "contexts for AppendIf/Txn and keys for reads")
	fs.StringVar(&c.only, "only", "", "run only these workloads (comma-separated: append,append-if,read,single)")
	fs.StringVar(&c.systems, "systems", "factstr,etcd", "systems to run (for profiling one side alone)")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write CPU, block and mutex profiles of the FACTSTR leader (a follower for read), and CPU profiles of the other two nodes (other<i>-...), during --profile-workloads here")
	fs.StringVar(&c.profileOf, "profile-workloads", "append", "with --profile-dir: the workloads to profile")
	fs.StringVar(&c.serveFlags, "factstr-serve-flags", "", "extra flags for every factstr-node serve (space-separated), e.g. --raft-log-store=wal")
	fs.StringVar(&c.variants, "factstr-variants", "", "also run FACTSTR with other serve flags in the same run, as name=flags;name=flags (e.g. wal=--raft-log-store=wal); each gets its own table against the same etcd figures")
	fs.StringVar(&c.scenario, "scenario", "compare", "compare (FACTSTR vs etcd) or memory (FACTSTR alone: query latency at 10k and at --memory-events events, then RSS with --memory-subscribers live subscribers)")
	fs.IntVar(&c.memEvents, "memory-events", 1_000_000, "memory scenario: events in the log")
	fs.IntVar(&c.memSubs, "memory-subscribers", 100, "memory scenario: live subscribers")
	fs.StringVar(&c.jsonOut, "json-out", "", "also write the results as JSON to this file")
	fs.IntVar(&c.rounds, "rounds", 1, "rounds of every system and workload, alternating which system goes first; with more than one the table shows each system's median round and the median of the rounds' ratios, which a machine whose speed drifts during the run moves less")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.rounds < 1 || c.rounds > 9 {
		err := fmt.Errorf("bad --rounds %d: want 1 to 9", c.rounds)
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return c, err
	}
	return c, nil
}

func run(ctx context.Context, c config) (err error) {
	for _, b := range []string{"factstr-node", "factstr-etcd-bench"} {
		if b == "factstr-etcd-bench" && !strings.Contains(c.systems, "etcd") {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.binDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s; run make bench-compare (it builds both)", b, c.binDir)
		}
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "factstr-compare-")
		if err != nil {
			return err
		}
		c.dir = d
	}
	defer func() {
		if c.keep || err != nil {
			fmt.Fprintf(os.Stderr, "data and node logs kept in %s\n", c.dir)
			return
		}
		os.RemoveAll(c.dir)
	}()
	if c.scenario == "memory" {
		return runMemory(ctx, c)
	}
	ws := selectWorkloads(c.only)
	rep := &report{
		Machine: machine(c.dir),
		Config: map[string]any{
			"duration": c.duration.String(), "warmup": c.warmup.String(), "concurrency": c.concurrency,
			"connections": c.connections, "payload_bytes": c.payloadBytes, "contexts": c.contexts, "dir": c.dir,
			"factstr_serve_flags": c.serveFlags, "factstr_variants": c.variants, "rounds": c.rounds,
		},
		Results: map[string]map[string]*load.Result{},
		LoadAvg: map[string]string{"before": loadavg()},
	}
	for _, w := range ws {
		rep.Results[w.key] = map[string]*load.Result{}
	}
	fmt.Fprintf(os.Stderr, "machine: %s; data in %s; load average %s\n", rep.Machine["cpu"], c.dir, rep.LoadAvg["before"])

	// One system runs at a time. Round 1 runs FACTSTR (each variant)
	// first, then etcd; the next round the other way round, and so on, so
	// a machine that drifts during the run favours neither.
	systems := factstrVariants(c.serveFlags, c.variants)
	for r := range c.rounds {
		rc := c
		if c.rounds > 1 {
			rc.dir = filepath.Join(c.dir, fmt.Sprintf("round%d", r+1))
			if err := os.MkdirAll(rc.dir, 0o755); err != nil {
				return err
			}
			if r > 0 {
				rc.profileDir = "" // the first round's profiles are enough
			}
		}
		round := map[string]map[string]*load.Result{}
		for _, w := range ws {
			round[w.key] = map[string]*load.Result{}
		}
		rrep := &report{Results: round}
		order := []string{"factstr", "etcd"}
		if r%2 == 1 {
			order = []string{"etcd", "factstr"}
		}
		for i, sys := range order {
			if i == 1 && r == 0 {
				rep.LoadAvg["between"] = loadavg()
			}
			if !strings.Contains(c.systems, sys) {
				continue
			}
			if sys == "etcd" {
				if err := runEtcd(ctx, rc, ws, rrep); err != nil {
					return fmt.Errorf("etcd: %w", err)
				}
				continue
			}
			for _, v := range systems {
				if err := runFactstr(ctx, rc, ws, rrep, v); err != nil {
					return fmt.Errorf("%s: %w", v.key, err)
				}
			}
		}
		rep.Profiles = append(rep.Profiles, rrep.Profiles...)
		rep.Rounds = append(rep.Rounds, round)
		if c.rounds > 1 {
			fmt.Fprintf(os.Stderr, "round %d of %d done; load average %s\n", r+1, c.rounds, loadavg())
			if !c.keep {
				os.RemoveAll(rc.dir)
			}
		}
	}
	rep.LoadAvg["after"] = loadavg()
	rep.Results = medianRounds(rep.Rounds)
	if len(rep.Rounds) == 1 {
		rep.Rounds = nil
	}

	for _, v := range systems {
		printTable(os.Stdout, ws, rep, v)
		printRounds(os.Stdout, ws, rep, v)
	}
	printDetails(os.Stdout, ws, rep, systems)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// medianRounds returns, per workload and system, the round whose ops/s is
// the median (the lower middle one for an even count; ties keep round
// order).
func medianRounds(rounds []map[string]map[string]*load.Result) map[string]map[string]*load.Result {
	out := map[string]map[string]*load.Result{}
	for _, round := range rounds {
		for w, bySys := range round {
			if out[w] == nil {
				out[w] = map[string]*load.Result{}
			}
			for sys := range bySys {
				var rs []*load.Result
				for _, rr := range rounds {
					if x := rr[w][sys]; x != nil {
						rs = append(rs, x)
					}
				}
				slices.SortStableFunc(rs, func(a, b *load.Result) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
				out[w][sys] = rs[(len(rs)-1)/2]
			}
		}
	}
	return out
}

// roundRatios returns FACTSTR's ops/s over etcd's in each round that ran
// both, and their median (0 if none did).
func roundRatios(rounds []map[string]map[string]*load.Result, w, sys string) ([]float64, float64) {
	var ratios []float64
	for _, rr := range rounds {
		if f, e := rr[w][sys], rr[w]["etcd"]; f != nil && e != nil && e.OpsPerSec > 0 {
			ratios = append(ratios, f.OpsPerSec/e.OpsPerSec)
		}
	}
	if len(ratios) == 0 {
		return nil, 0
	}
	sorted := slices.Clone(ratios)
	slices.Sort(sorted)
	return ratios, sorted[(len(sorted)-1)/2]
}

// printRounds prints, for a run of several rounds, each round's ratios
// and their median, with the targets checked against the median.
func printRounds(out io.Writer, ws []workload, rep *report, v variant) {
	if len(rep.Rounds) < 2 {
		return
	}
	fmt.Fprintf(out, "\n%s: ops/s ratio to etcd in each of %d rounds (odd rounds ran FACTSTR first, even rounds etcd)\n", v.key, len(rep.Rounds))
	for _, w := range ws {
		ratios, median := roundRatios(rep.Rounds, w.key, v.key)
		if ratios == nil {
			continue
		}
		parts := make([]string, len(ratios))
		for i, r := range ratios {
			parts[i] = fmt.Sprintf("%.2fx", r)
		}
		line := fmt.Sprintf("  %-34s %s  median %.2fx", w.title, strings.Join(parts, " "), median)
		if w.ratioTarget > 0 {
			line += fmt.Sprintf("  ops>=%.1fx:%s", w.ratioTarget, yes(median >= w.ratioTarget))
		}
		fmt.Fprintln(out, line)
	}
}

// selectWorkloads returns the workloads --only names (all for ""), in
// the order of workloads.
func selectWorkloads(only string) []workload {
	var ws []workload
	for _, w := range workloads {
		if only == "" || strings.Contains(","+only+",", ","+w.key+",") {
			ws = append(ws, w)
		}
	}
	return ws
}

// factstrVariants returns the FACTSTR configurations to run: the plain one
// with serveFlags, then one per name=flags of --factstr-variants, each
// with serveFlags too.
func factstrVariants(serveFlags, variants string) []variant {
	systems := []variant{{"factstr", serveFlags}}
	for _, v := range strings.Split(variants, ";") {
		if name, flags, ok := strings.Cut(strings.TrimSpace(v), "="); ok && name != "" {
			systems = append(systems, variant{"factstr-" + name, strings.TrimSpace(serveFlags + " " + flags)})
		}
	}
	return systems
}

// ---- processes ----

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func start(dir, name, bin string, args ...string) (*proc, error) {
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

func stopAll(ps []*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// loadRun runs a load command and decodes its JSON result; progress goes to
// stderr.
func loadRun(ctx context.Context, bin string, args ...string) (*load.Result, float64, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	var r load.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, 0, fmt.Errorf("decode result %q: %w", out.String(), err)
	}
	return &r, cpu, nil
}

func (c config) commonArgs(w workload) []string {
	conc, conns := c.concurrency, c.connections
	if w.single {
		conc, conns = 1, 1
	}
	return []string{
		"--json", "--duration", c.duration.String(), "--warmup", c.warmup.String(),
		"--concurrency", fmt.Sprint(conc), "--connections", fmt.Sprint(conns),
		"--payload-bytes", fmt.Sprint(c.payloadBytes), "--contexts", fmt.Sprint(c.contexts),
	}
}

// ---- FACTSTR ----

type factstrCluster struct {
	procs                   []*proc
	grpcAddrs, metricsAddrs []string
	leader                  string
}

// variant is one FACTSTR configuration: its key in the results and the
// extra serve flags.
type variant struct{ key, flags string }

func runFactstr(ctx context.Context, c config, ws []workload, rep *report, v variant) error {
	bin := filepath.Join(c.binDir, "factstr-node")
	fc, err := startFactstr(ctx, c, v.key, v.flags)
	if fc != nil {
		defer stopAll(fc.procs)
	}
	if err != nil {
		return err
	}
	procs, grpcAddrs, metricsAddrs, leader := fc.procs, fc.grpcAddrs, fc.metricsAddrs, fc.leader
	for _, w := range ws {
		args := append([]string{"bench", "--addr", strings.Join(grpcAddrs, ",")}, w.factstr...)
		args = append(args, c.commonArgs(w)...)
		var profWG sync.WaitGroup
		if c.profileDir != "" && strings.Contains(","+c.profileOf+",", ","+w.key+",") {
			li := leaderIndex(leader)
			if w.key == "read" { // reads are served by the followers: profile one
				li = (li + 1) % 3
			}
			var profMu sync.Mutex
			for i := range 3 {
				// The profiled node gets CPU, block and mutex profiles; the other
				// two a CPU profile each, so a cost that moved from the leader to
				// the followers (forwarding, the apply) still shows.
				name, kinds := "node-"+v.key+"-"+w.key, []string{"profile", "block", "mutex"}
				if i != li {
					name, kinds = fmt.Sprintf("other%d-%s-%s", i, v.key, w.key), []string{"profile"}
				}
				profWG.Add(1)
				go func() {
					defer profWG.Done()
					files := profile(ctx, c, metricsAddrs[i], name, kinds)
					profMu.Lock()
					rep.Profiles = append(rep.Profiles, files...)
					profMu.Unlock()
				}()
			}
		}
		leaderMetrics := metricsAddrs[leaderIndex(leader)]
		before := scrapeMetrics(leaderMetrics)
		r, err := withCPU(procs, c.warmup, func() (*load.Result, float64, error) { return loadRun(ctx, bin, args...) })
		profWG.Wait()
		if err != nil {
			return err
		}
		after := scrapeMetrics(leaderMetrics)
		// Group commit on the leader: entries and commands per state
		// machine batch (one bbolt transaction), warm-up included.
		if n := after["factstr_fsm_apply_batch_entries_count"] - before["factstr_fsm_apply_batch_entries_count"]; n > 0 {
			r.Extra["leader_fsm_batches"] = n
			r.Extra["leader_entries_per_batch"] = (after["factstr_fsm_apply_batch_entries_sum"] - before["factstr_fsm_apply_batch_entries_sum"]) / n
			r.Extra["leader_commands_per_batch"] = (after["factstr_fsm_apply_batch_commands_sum"] - before["factstr_fsm_apply_batch_commands_sum"]) / n
			r.Extra["leader_fsm_batch_ms"] = 1000 * (after["factstr_fsm_apply_duration_seconds_sum"] - before["factstr_fsm_apply_duration_seconds_sum"]) / n
		}
		// Coalescing: commands per Raft entry, entries per Raft log write.
		if n := after[`factstr_propose_batch_commands_count{kind="entry"}`] - before[`factstr_propose_batch_commands_count{kind="entry"}`]; n > 0 {
			r.Extra["leader_commands_per_entry"] = (after[`factstr_propose_batch_commands_sum{kind="entry"}`] - before[`factstr_propose_batch_commands_sum{kind="entry"}`]) / n
		}
		if n := after["factstr_raft_store_logs_entries_count"] - before["factstr_raft_store_logs_entries_count"]; n > 0 {
			r.Extra["leader_entries_per_store_logs"] = (after["factstr_raft_store_logs_entries_sum"] - before["factstr_raft_store_logs_entries_sum"]) / n
		}
		rep.Results[w.key][v.key] = r
	}
	return nil
}

// startFactstr starts three factstr-node processes and waits for a leader.
// On error the returned cluster (if any) still needs stopping.
func startFactstr(ctx context.Context, c config, name, serveFlags string) (*factstrCluster, error) {
	bin := filepath.Join(c.binDir, "factstr-node")
	base := filepath.Join(c.dir, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	ports, err := freeport.GetN(12, true)
	if err != nil {
		return nil, err
	}
	fc := &factstrCluster{}
	var gossip []string
	for i := range 3 {
		gossip = append(gossip, fmt.Sprintf("127.0.0.1:%d", ports[i*4+2]))
		fc.grpcAddrs = append(fc.grpcAddrs, fmt.Sprintf("127.0.0.1:%d", ports[i*4]))
		fc.metricsAddrs = append(fc.metricsAddrs, fmt.Sprintf("127.0.0.1:%d", ports[i*4+3]))
	}
	for i := range 3 {
		id := fmt.Sprintf("f%d", i+1)
		var join []string
		for j := range 3 {
			if j != i {
				join = append(join, gossip[j])
			}
		}
		args := []string{"serve", "--node-id", id, "--data-dir", filepath.Join(base, id),
			"--grpc-addr", fc.grpcAddrs[i], "--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[i*4+1]),
			"--gossip-addr", gossip[i], "--bootstrap-expect", "3", "--join", strings.Join(join, ","),
			"--metrics-addr", fc.metricsAddrs[i], "--log-level", "warn"}
		args = append(args, strings.Fields(serveFlags)...)
		if c.profileDir != "" {
			args = append(args, "--pprof", "--pprof-block-rate", "20000", "--pprof-mutex-fraction", "100")
		}
		p, err := start(c.dir, name+"-"+id, bin, args...)
		if err != nil {
			return fc, err
		}
		fc.procs = append(fc.procs, p)
	}
	if fc.leader, err = waitFactstr(ctx, fc.grpcAddrs); err != nil {
		return fc, err
	}
	fmt.Fprintf(os.Stderr, "FACTSTR cluster up: leader %s, nodes %s\n", fc.leader, strings.Join(fc.grpcAddrs, ","))
	return fc, nil
}

func leaderIndex(id string) int {
	var i int
	if _, err := fmt.Sscanf(id, "f%d", &i); err != nil || i < 1 || i > 3 {
		return 0
	}
	return i - 1
}

// waitFactstr waits until every node knows the same leader and an append
// succeeds.
func waitFactstr(ctx context.Context, addrs []string) (string, error) {
	cl, err := client.Dial(ctx, addrs, client.WithRetryTimeout(5*time.Second))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		leaders := map[string]bool{}
		for i := range addrs {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := cl.AdminAt(i).Status(sctx, &factstrv1.StatusRequest{})
			cancel()
			if err == nil {
				leaders[st.GetLeaderId()] = true
			} else {
				leaders["?"] = true
			}
		}
		if len(leaders) == 1 && !leaders[""] && !leaders["?"] {
			for l := range leaders {
				return l, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return "", errors.New("no stable leader within 60s")
}

// profile takes profiles of the given kinds (pprof endpoint names) of one
// node during the measured part of a workload, into <profile-dir>/<name>-<kind>.pb.gz.
func profile(ctx context.Context, c config, metricsAddr, name string, kinds []string) []string {
	if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(c.warmup + time.Second):
	}
	secs := max(int((c.duration-2*time.Second)/time.Second), 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var files []string
	for _, kind := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", metricsAddr, kind, secs)
			resp, err := http.Get(url)
			if err != nil {
				fmt.Fprintf(os.Stderr, "profile %s: %v\n", kind, err)
				return
			}
			defer resp.Body.Close()
			name := filepath.Join(c.profileDir, name+"-"+strings.Replace(kind, "profile", "cpu", 1)+".pb.gz")
			f, err := os.Create(name)
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err == nil {
				mu.Lock()
				files = append(files, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return files
}

// ---- etcd ----

func runEtcd(ctx context.Context, c config, ws []workload, rep *report) error {
	bin := filepath.Join(c.binDir, "factstr-etcd-bench")
	base := filepath.Join(c.dir, "etcd")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	ports, err := freeport.GetN(6, true)
	if err != nil {
		return err
	}
	var initial, endpoints []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[i*2+1]))
		endpoints = append(endpoints, fmt.Sprintf("127.0.0.1:%d", ports[i*2]))
	}
	var procs []*proc
	defer func() { stopAll(procs) }()
	for i := range 3 {
		id := fmt.Sprintf("e%d", i+1)
		p, err := start(c.dir, "etcd-"+id, bin, "serve", "--name", id, "--data-dir", filepath.Join(base, id),
			"--client-port", fmt.Sprint(ports[i*2]), "--peer-port", fmt.Sprint(ports[i*2+1]),
			"--initial-cluster", strings.Join(initial, ","))
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, p := range procs {
		for !logHas(p.log.Name(), "ready") {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready within 60s (see %s)", p.name, p.log.Name())
			}
			select {
			case <-p.done:
				return fmt.Errorf("%s exited (see %s)", p.name, p.log.Name())
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	fmt.Fprintf(os.Stderr, "etcd cluster up: %s\n", strings.Join(endpoints, ","))
	for _, w := range ws {
		args := append([]string{"load", "--endpoints", strings.Join(endpoints, ",")}, w.etcd...)
		args = append(args, c.commonArgs(w)...)
		r, err := withCPU(procs, c.warmup, func() (*load.Result, float64, error) { return loadRun(ctx, bin, args...) })
		if err != nil {
			return err
		}
		rep.Results[w.key]["etcd"] = r
	}
	return nil
}

// cpuSeconds is the user+system CPU time a process has used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return statCPUSeconds(string(b))
}

// statCPUSeconds reads utime and stime from the text of /proc/<pid>/stat.
// They are counted after the command name, which is in parentheses and
// may itself hold spaces and parentheses.
func statCPUSeconds(s string) float64 {
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100 // USER_HZ
}

func cpuOf(ps []*proc) float64 {
	var t float64
	for _, p := range ps {
		t += cpuSeconds(p.cmd.Process.Pid)
	}
	return t
}

// withCPU runs f and records in r how much CPU the servers and the load
// generator used, and per successful operation (warm-up counted at the
// measured rate).
func withCPU(servers []*proc, warmup time.Duration, f func() (*load.Result, float64, error)) (*load.Result, error) {
	before := cpuOf(servers)
	r, clientCPU, err := f()
	if err != nil {
		return nil, err
	}
	used := cpuOf(servers) - before
	if r.Extra == nil {
		r.Extra = map[string]float64{}
	}
	r.Extra["server_cpu_seconds"] = used
	r.Extra["client_cpu_seconds"] = clientCPU
	if r.Ops > 0 {
		// The warm-up ran at about the measured rate.
		ops := r.OpsPerSec * (r.Seconds + warmup.Seconds())
		r.Extra["server_cpu_us_per_op"] = used / ops * 1e6
		r.Extra["client_cpu_us_per_op"] = clientCPU / ops * 1e6
	}
	return r, nil
}

// scrapeMetrics reads the unlabelled samples of a node's /metrics.
func scrapeMetrics(addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			var v float64
			if _, err := fmt.Sscan(f[1], &v); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// scrapeLabelled reads the samples of one metric of a node's /metrics,
// keyed by their label set.
func scrapeLabelled(addr, name string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			labels, val, ok := strings.Cut(rest, "} ")
			var v float64
			if _, err := fmt.Sscan(val, &v); ok && err == nil {
				out["{"+labels+"}"] = v
			}
		}
	}
	return out
}

func logHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// ---- report ----

func printTable(out io.Writer, ws []workload, rep *report, v variant) {
	fmt.Fprintf(out, "\n%s vs etcd, 3 nodes each on loopback, fsync on both, %v clients, %v-byte payloads, %s per run\n",
		v.key, rep.Config["concurrency"], rep.Config["payload_bytes"], rep.Config["duration"])
	if v.flags != "" {
		fmt.Fprintf(out, "%s serve flags: %s\n", v.key, v.flags)
	}
	fmt.Fprintf(out, "machine: %s, %s cores; load average before %s, between %s, after %s\n\n",
		rep.Machine["cpu"], rep.Machine["nproc"], rep.LoadAvg["before"], rep.LoadAvg["between"], rep.LoadAvg["after"])
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tFACTSTR ops/s\tetcd ops/s\tratio\tFACTSTR p50 ms\tetcd p50 ms\tFACTSTR p99 ms\tetcd p99 ms\tp99 ratio\terrors F/e\ttarget\t")
	for _, w := range ws {
		f, e := rep.Results[w.key][v.key], rep.Results[w.key]["etcd"]
		if f == nil || e == nil {
			for _, r := range []*load.Result{f, e} {
				if r != nil {
					fmt.Fprintf(tw, "%s (%s only)\t%.0f\t\t\t%.2f\t\t%.2f\t\t\t%s\t\t\n", w.title, r.Name, r.OpsPerSec, r.Latency.P50, r.Latency.P99, errs(r))
				}
			}
			continue
		}
		ratio := f.OpsPerSec / e.OpsPerSec
		var target []string
		if w.ratioTarget > 0 {
			target = append(target, fmt.Sprintf("ops>=%.1fx:%s", w.ratioTarget, yes(ratio >= w.ratioTarget)))
		}
		if w.p99Below {
			target = append(target, "p99<etcd:"+yes(f.Latency.P99 < e.Latency.P99))
		}
		if w.p50Max {
			target = append(target, "p50<=etcd:"+yes(f.Latency.P50 <= e.Latency.P50))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2fx\t%.2f\t%.2f\t%.2f\t%.2f\t%.2fx\t%s/%s\t%s\t\n", w.title,
			f.OpsPerSec, e.OpsPerSec, ratio, f.Latency.P50, e.Latency.P50, f.Latency.P99, e.Latency.P99,
			f.Latency.P99/e.Latency.P99, errs(f), errs(e), strings.Join(target, " "))
	}
	tw.Flush()
}

// printDetails prints errors, CPU per operation and group-commit sizes.
func printDetails(out io.Writer, ws []workload, rep *report, systems []variant) {
	keys := []string{}
	for _, v := range systems {
		keys = append(keys, v.key)
	}
	keys = append(keys, "etcd")
	fmt.Fprintln(out)
	for _, w := range ws {
		for _, sys := range keys {
			if r := rep.Results[w.key][sys]; r != nil && len(r.Errors) > 0 {
				fmt.Fprintf(out, "  %s %s errors: %v\n", sys, w.key, r.Errors)
			}
		}
	}
	fmt.Fprintln(out, "\nCPU per operation: the three servers together, and the load generator:")
	for _, w := range ws {
		for _, sys := range keys {
			if r := rep.Results[w.key][sys]; r != nil {
				fmt.Fprintf(out, "  %-10s %-12s servers %5.0f µs/op (%6.2fs)  client %5.0f µs/op (%6.2fs)\n", w.key, sys,
					r.Extra["server_cpu_us_per_op"], r.Extra["server_cpu_seconds"], r.Extra["client_cpu_us_per_op"], r.Extra["client_cpu_seconds"])
			}
		}
	}
	fmt.Fprintln(out, "\nFACTSTR group commit on the leader (per state machine batch, warm-up included):")
	for _, w := range ws {
		for _, v := range systems {
			if r := rep.Results[w.key][v.key]; r != nil && r.Extra["leader_fsm_batches"] > 0 {
				fmt.Fprintf(out, "  %-10s %-12s %6.1f entries, %6.1f commands per batch (%0.f batches, %.2f ms each); %6.1f commands per Raft entry, %5.1f entries per Raft log write\n", w.key, v.key,
					r.Extra["leader_entries_per_batch"], r.Extra["leader_commands_per_batch"], r.Extra["leader_fsm_batches"], r.Extra["leader_fsm_batch_ms"],
					r.Extra["leader_commands_per_entry"], r.Extra["leader_entries_per_store_logs"])
			}
		}
	}
	if len(rep.Profiles) > 0 {
		fmt.Fprintf(out, "profiles (node-: the leader, a follower for read; other<i>-: the other nodes): %s\n", strings.Join(rep.Profiles, " "))
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func errs(r *load.Result) string {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return fmt.Sprint(n)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine(dir string) map[string]string {
	m := map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("df", "--output=source,fstype", dir).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		m["disk"] = strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	}
	return m
}
