package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/jepsen-style/checker"
	"github.com/factstr/factstr-go/jepsen-style/history"
	"github.com/factstr/factstr-go/jepsen-style/runner"
)

// The tests stop before runner.Preflight: a run needs root, network
// namespaces and minutes, and -cleanup would remove the namespaces of a
// run in progress on the same machine.

// TestConfigure: each mode's schedule and timing, the overrides, and the
// settings derived from the schedule (Raft proxies for latency, lazyfs for
// power loss).
func TestConfigure(t *testing.T) {
	tests := []struct {
		name, mode, nemeses string
		dur                 time.Duration
		wantDur             time.Duration
		wantNemeses         []string
		negative, proxy, fs bool
	}{
		{name: "smoke", mode: "smoke", wantDur: 50 * time.Second, wantNemeses: []string{"partition-leader", "kill", "pause-leader"}},
		{name: "negative", mode: "negative", wantDur: 36 * time.Second, wantNemeses: []string{"partition-follower"}, negative: true},
		{name: "full", mode: "full", wantDur: 17 * time.Minute, proxy: true, fs: true},
		{name: "duration override", mode: "smoke", dur: 5 * time.Second, wantDur: 5 * time.Second, wantNemeses: []string{"partition-leader", "kill", "pause-leader"}},
		{name: "schedule override", mode: "smoke", nemeses: "latency,kill", wantDur: 50 * time.Second, wantNemeses: []string{"latency", "kill"}, proxy: true},
		{name: "power loss", mode: "negative", nemeses: "power-loss-all", wantDur: 36 * time.Second, wantNemeses: []string{"power-loss-all"}, negative: true, fs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configure(tt.mode, 42, tt.dur, tt.nemeses)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Name != tt.mode || cfg.Nodes != 3 || cfg.Seed != 42 || cfg.Duration != tt.wantDur {
				t.Errorf("name %q, nodes %d, seed %d, duration %v", cfg.Name, cfg.Nodes, cfg.Seed, cfg.Duration)
			}
			if tt.wantNemeses != nil && !slices.Equal(cfg.Nemeses, tt.wantNemeses) {
				t.Errorf("nemeses %q, want %q", cfg.Nemeses, tt.wantNemeses)
			}
			if err := runner.CheckSchedule(cfg.Nemeses); err != nil || len(cfg.Nemeses) == 0 {
				t.Errorf("schedule %q: %v", cfg.Nemeses, err)
			}
			if cfg.UnsafeReads != tt.negative || cfg.Negative != tt.negative {
				t.Errorf("unsafe reads %v, negative %v; want both %v", cfg.UnsafeReads, cfg.Negative, tt.negative)
			}
			if cfg.RaftProxy != tt.proxy || cfg.LazyFS != tt.fs {
				t.Errorf("Raft proxy %v, lazyfs %v; want %v, %v", cfg.RaftProxy, cfg.LazyFS, tt.proxy, tt.fs)
			}
			// A fault and its healing fit several times into the run.
			if cfg.FaultFor <= 0 || cfg.HealFor <= 0 || cfg.OpTimeout <= 0 || cfg.Election <= 0 || cfg.Workers <= 0 {
				t.Errorf("timings %+v", cfg)
			}
		})
	}

	// The full run covers every nemesis there is.
	full, _ := configure("full", 1, 0, "")
	for n := range runner.Nemeses {
		if !slices.Contains(full.Nemeses, n) {
			t.Errorf("the full run leaves out nemesis %q", n)
		}
	}

	// Seed 0 takes one from the clock.
	if cfg, err := configure("smoke", 0, 0, ""); err != nil || cfg.Seed == 0 {
		t.Errorf("seed 0: %d, %v; want a seed from the clock", cfg.Seed, err)
	}

	for _, tt := range []struct{ mode, nemeses, want string }{
		{"soak", "", `unknown -mode "soak": smoke, negative or full`},
		{"", "", `unknown -mode "": smoke, negative or full`},
		{"smoke", "kill,meteor", `unknown nemesis "meteor" (see -list)`},
		{"smoke", "kill,", `unknown nemesis "" (see -list)`},
	} {
		if _, err := configure(tt.mode, 1, 0, tt.nemeses); err == nil || err.Error() != tt.want {
			t.Errorf("configure(%q, nemeses %q) = %v, want %q", tt.mode, tt.nemeses, err, tt.want)
		}
	}
}

// TestOutcome: the exit code is 0 only for a complete run without
// anomalies, and for the negative control only when stale reads were
// found.
func TestOutcome(t *testing.T) {
	clean := &checker.Result{}
	stale := &checker.Result{Anomalies: []checker.Anomaly{{Kind: "stale-read"}, {Kind: "stale-read"}}}
	lost := &checker.Result{Anomalies: []checker.Anomaly{{Kind: "lost-write"}}}
	broken := errors.New("node n2 did not start")
	tests := []struct {
		name     string
		res      *checker.Result
		err      error
		negative bool
		code     int
		verdict  string
	}{
		{"clean", clean, nil, false, 0, "PASS: no anomalies"},
		{"anomalies", lost, nil, false, 1, "FAIL: 1 anomalies (lost-write×1)"},
		{"run incomplete", clean, broken, false, 1, "FAIL: the run did not complete: node n2 did not start; PASS: no anomalies"},
		{"negative finds stale reads", stale, nil, true, 0, "PASS (negative control): the checkers reported 2 stale reads"},
		{"negative finds none", clean, nil, true, 1, "FAIL (negative control): no stale read was reported"},
		{"negative finds other anomalies only", lost, nil, true, 1, "FAIL (negative control): no stale read was reported against --unsafe-local-reads nodes; FAIL: 1 anomalies (lost-write×1)"},
	}
	for _, tt := range tests {
		v, code := outcome(tt.res, tt.err, tt.negative)
		if code != tt.code || !strings.HasPrefix(v, tt.verdict) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, v, tt.code, tt.verdict)
		}
	}
}

// recordHistory writes a small run's history: one acknowledged append of
// two events, and the final read of each node (finalEvents per node).
func recordHistory(t *testing.T, finals map[string][]history.Event) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "history.jsonl")
	rec, err := history.NewRecorder(p)
	if err != nil {
		t.Fatal(err)
	}
	op := rec.Invoke(0, "w0", "n1", history.FAppend, &history.Value{Ctx: "c1", IDs: []string{"a1", "a2"}})
	rec.Complete(op, 0, "w0", "n1", history.FAppend, history.OK, &history.Value{First: 1, Last: 2}, nil)
	for _, n := range []string{"n1", "n2", "n3"} {
		op := rec.Invoke(99, "final", n, history.FFinalRead, nil)
		rec.Complete(op, 99, "final", n, history.FFinalRead, history.OK, &history.Value{Events: finals[n]}, nil)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRun drives the command line as a user would, up to where a real run
// would need root: flags, -list, -check of recorded histories, and the
// refusals of a bad mode or schedule.
func TestRun(t *testing.T) {
	at := time.Now().UnixNano()
	e1, e2 := history.Event{Seq: 1, ID: "a1", Ctx: "c1", At: at}, history.Event{Seq: 2, ID: "a2", Ctx: "c1", At: at}
	good := recordHistory(t, map[string][]history.Event{"n1": {e1, e2}, "n2": {e1, e2}, "n3": {e1, e2}})
	// Every node lost the second acknowledged event.
	lossy := recordHistory(t, map[string][]history.Event{"n1": {e1}, "n2": {e1}, "n3": {e1}})
	// n3 alone lost it.
	divergent := recordHistory(t, map[string][]history.Event{"n1": {e1, e2}, "n2": {e1, e2}, "n3": {e1}})
	garbage := filepath.Join(t.TempDir(), "garbage.jsonl")
	if err := os.WriteFile(garbage, []byte("{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // each must appear
		stderr     string
		noStdout   bool
		linesOfOut int // > 0: this many lines on stdout
	}{
		{name: "help", args: []string{"-h"}, code: 0, stderr: "-mode string", noStdout: true},
		{name: "unknown flag", args: []string{"-nodes", "5"}, code: 2, stderr: "flag provided but not defined: -nodes", noStdout: true},
		{name: "bad duration", args: []string{"-duration", "long"}, code: 2, stderr: `invalid value "long" for flag -duration`, noStdout: true},
		{name: "list", args: []string{"-list"}, code: 0, stdout: []string{"partition-leader", "isolate the leader from every other node", "clock-strobe"}, linesOfOut: len(runner.Nemeses)},
		{name: "check a good history", args: []string{"-check", good}, code: 0, stdout: []string{"re-check of " + good, "PASS: no anomalies"}},
		{name: "check a history with a lost write", args: []string{"-check", lossy}, code: 1, stdout: []string{"FAIL: 1 anomalies (lost-write×1)", "seq 1–2"}},
		{name: "check a history with divergent logs", args: []string{"-check", divergent}, code: 1, stdout: []string{"FAIL: 1 anomalies (divergent-logs×1)", "n1 ends with 2 events, n3 with 1"}},
		{name: "check a missing file", args: []string{"-check", good + ".missing"}, code: 2, stderr: "no such file", noStdout: true},
		{name: "check garbage", args: []string{"-check", garbage}, code: 2, stderr: "invalid character", noStdout: true},
		{name: "unknown mode", args: []string{"-mode", "soak"}, code: 2, stderr: `unknown -mode "soak": smoke, negative or full`, noStdout: true},
		{name: "unknown nemesis", args: []string{"-nemeses", "kill,meteor"}, code: 2, stderr: `unknown nemesis "meteor" (see -list)`, noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			if tt.noStdout && stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
			if tt.linesOfOut > 0 {
				if n := strings.Count(stdout.String(), "\n"); n != tt.linesOfOut {
					t.Errorf("%d lines, want %d:\n%s", n, tt.linesOfOut, stdout.String())
				}
			}
		})
	}
}
