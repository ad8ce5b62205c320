// Command jepsen runs the FACTSTR fault-injection suite: real factstr-node
// processes in network namespaces, a recorded workload, nemeses, and the
// checkers of jepsen-style/checker. It needs root.
//
//	jepsen -mode smoke      # ~3 min, exit 0 only without anomalies
//	jepsen -mode negative   # nodes with --unsafe-local-reads; exit 0 only if stale reads are reported
//	jepsen -mode full       # ~20 min, every nemesis
//	jepsen -cleanup         # remove leftovers of an interrupted run
//	jepsen -check DIR/history.jsonl   # re-check a recorded history
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/factstr/factstr-go/jepsen-style/checker"
	"github.com/factstr/factstr-go/jepsen-style/history"
	"github.com/factstr/factstr-go/jepsen-style/proxy"
	"github.com/factstr/factstr-go/jepsen-style/report"
	"github.com/factstr/factstr-go/jepsen-style/runner"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == runner.ProxyArg { // a Raft latency proxy the runner started (runner/latency.go)
		os.Exit(proxy.Main(os.Args[2]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command with its arguments (without the program name); it
// returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jepsen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "smoke", "smoke, negative or full")
	out := fs.String("out", "", "output directory (default: bin/jepsen/<mode>-<time>)")
	seed := fs.Int64("seed", 0, "random seed (0: from the clock)")
	dur := fs.Duration("duration", 0, "override the workload duration")
	nemeses := fs.String("nemeses", "", "override the nemesis schedule (comma-separated; see -list)")
	bin := fs.String("bin", "", "prebuilt factstr-node (default: build it once with CGO_ENABLED=0)")
	repo := fs.String("repo", ".", "repository root (to build factstr-node)")
	cleanup := fs.Bool("cleanup", false, "remove leftover namespaces, bridge, rules and node processes, then exit")
	check := fs.String("check", "", "re-check a recorded history.jsonl and exit")
	list := fs.Bool("list", false, "list nemeses")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag set has said what was wrong
	}

	if *list {
		for k, v := range runner.Nemeses {
			fmt.Fprintf(stdout, "%-20s %s\n", k, v)
		}
		return 0
	}
	if *cleanup {
		if err := runner.Preflight(); err != nil && os.Geteuid() != 0 {
			fmt.Fprintln(stderr, err)
			return 2
		}
		did := runner.Cleanup(8)
		if len(did) == 0 {
			fmt.Fprintln(stdout, "nothing to clean up")
		}
		for _, d := range did {
			fmt.Fprintln(stdout, d)
		}
		return 0
	}
	if *check != "" {
		return recheck(*check, stdout, stderr)
	}

	cfg, err := configure(*mode, *seed, *dur, *nemeses)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := runner.Preflight(); err != nil {
		fmt.Fprintln(stderr, "jepsen:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join("bin", "jepsen", fmt.Sprintf("%s-%s", *mode, time.Now().Format("20060102-150405")))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cfg.OutDir = *out

	// Cleanup always: on return (defer in runner.Run), on SIGINT/SIGTERM
	// (ctx cancellation), and a hard watchdog if the run overruns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hard := cfg.Duration + 6*time.Minute
	watchdog := time.AfterFunc(hard, func() {
		fmt.Fprintf(stderr, "jepsen: watchdog: run exceeded %s; cleaning up and exiting\n", hard)
		runner.Cleanup(cfg.Nodes + 2)
		os.Exit(3)
	})
	defer watchdog.Stop()

	fmt.Fprintf(stdout, "jepsen %s: seed %d, output %s\n", *mode, cfg.Seed, *out)
	if *bin == "" {
		b, err := runner.Build(ctx, *repo, *out)
		if err != nil {
			fmt.Fprintln(stderr, "jepsen:", err)
			return 2
		}
		*bin = b
	}
	cfg.Bin, _ = filepath.Abs(*bin)
	o, err := runner.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "jepsen: run failed:", err)
		if o == nil || len(o.Entries) == 0 {
			return 2
		}
	}
	fmt.Fprintln(stdout, "checking the history…")
	ops := history.Pair(o.Entries)
	res := checker.Check(ops, checker.Options{PorcupineTimeoutSec: 60})
	v, code := outcome(res, err, cfg.Negative)
	cj, _ := json.MarshalIndent(cfg, "", "  ")
	d := report.Data{Title: fmt.Sprintf("FACTSTR fault suite: %s run", *mode), Config: string(cj), Ops: ops, Result: res, Notes: o.Notes,
		Verdict: v, Duration: o.Finished.Sub(o.Started).Seconds()}
	write := func(name string, f func(*os.File)) {
		fh, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return
		}
		f(fh)
		fh.Close()
	}
	write("summary.txt", func(f *os.File) { report.Text(f, d) })
	write("report.html", func(f *os.File) { report.HTML(f, d) })
	write("results.json", func(f *os.File) {
		e := json.NewEncoder(f)
		e.SetIndent("", "  ")
		e.Encode(res)
	})
	for _, p := range res.Porcupine {
		if p.Result != "Ok" {
			_ = p.WriteVisualization(filepath.Join(*out, "porcupine-"+p.Name+".html"))
		}
	}
	report.Text(stdout, d)
	fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(*out, "report.html"))
	return code
}

// configure returns the run configuration of a mode (smoke, negative or
// full), with the workload duration (if > 0) and the nemesis schedule (if
// not "") overridden, and a seed from the clock for seed 0.
func configure(mode string, seed int64, dur time.Duration, nemeses string) (runner.Config, error) {
	cfg := runner.Config{Name: mode, Nodes: 3, Workers: 6, Think: 40 * time.Millisecond, OpTimeout: 2 * time.Second,
		Contexts: 6, Election: 500 * time.Millisecond, Seed: seed}
	switch mode {
	case "smoke":
		cfg.Duration, cfg.FaultFor, cfg.HealFor = 50*time.Second, 10*time.Second, 6*time.Second
		cfg.Nemeses = []string{"partition-leader", "kill", "pause-leader"}
	case "negative":
		cfg.Duration, cfg.FaultFor, cfg.HealFor = 36*time.Second, 12*time.Second, 5*time.Second
		cfg.Nemeses = []string{"partition-follower"}
		cfg.UnsafeReads, cfg.Negative = true, true
	case "full":
		cfg.Duration, cfg.FaultFor, cfg.HealFor = 17*time.Minute, 12*time.Second, 8*time.Second
		cfg.Nemeses = []string{"partition-leader", "kill", "partition-halves", "pause-leader", "partition-bridge", "kill-leader",
			"loss", "partition-oneway", "pause", "kill-all", "power-loss", "power-loss-all", "pause-kill", "partition-follower", "membership", "membership-leader", "membership-quick",
			"latency", "clock-bump", "clock-strobe"}
	default:
		return runner.Config{}, fmt.Errorf("unknown -mode %q: smoke, negative or full", mode)
	}
	if dur > 0 {
		cfg.Duration = dur
	}
	if nemeses != "" {
		cfg.Nemeses = strings.Split(nemeses, ",")
	}
	if err := runner.CheckSchedule(cfg.Nemeses); err != nil {
		return runner.Config{}, fmt.Errorf("%w (see -list)", err)
	}
	cfg.RaftProxy = runner.NeedsRaftProxy(cfg.Nemeses) // Raft proxies only when needed
	cfg.LazyFS = runner.NeedsLazyFS(cfg.Nemeses)       // data directories on lazyfs only for power loss
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	return cfg, nil
}

// recheck re-checks a recorded history and prints the report; it returns
// 1 if the checkers found anomalies, 2 if the history cannot be read.
func recheck(path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	entries, err := history.Read(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ops := history.Pair(entries)
	res := checker.Check(ops, checker.Options{})
	report.Text(stdout, report.Data{Title: "re-check of " + path, Ops: ops, Result: res, Verdict: verdict(res)})
	if len(res.Anomalies) > 0 {
		return 1
	}
	return 0
}

// outcome is the verdict of a run and its exit code: 0 only if the run
// completed without anomalies, or, for the negative control, if the
// checkers found the stale reads its nodes were set up to serve.
func outcome(res *checker.Result, runErr error, negative bool) (string, int) {
	v := verdict(res)
	code := 0
	if len(res.Anomalies) > 0 {
		code = 1
	}
	if runErr != nil {
		v, code = "FAIL: the run did not complete: "+runErr.Error()+"; "+v, 1
	}
	if negative {
		n := res.Kinds()["stale-read"]
		if n > 0 {
			v, code = fmt.Sprintf("PASS (negative control): the checkers reported %d stale reads from nodes with --unsafe-local-reads; %s", n, v), 0
		} else {
			v, code = "FAIL (negative control): no stale read was reported against --unsafe-local-reads nodes; "+v, 1
		}
	}
	return v, code
}

func verdict(r *checker.Result) string {
	if len(r.Anomalies) == 0 {
		return "PASS: no anomalies"
	}
	var k []string
	for kind, n := range r.Kinds() {
		k = append(k, fmt.Sprintf("%s×%d", kind, n))
	}
	return fmt.Sprintf("FAIL: %d anomalies (%s)", len(r.Anomalies), strings.Join(k, ", "))
}
