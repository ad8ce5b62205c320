package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseClockOffset(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "", want: 0},
		{in: "  \n", want: 0},
		{in: "0", want: 0},
		{in: "-90s", want: -90 * time.Second},
		{in: "+10m", want: 10 * time.Minute},
		{in: "10m\n", want: 10 * time.Minute},
		{in: " -5m30s ", want: -5*time.Minute - 30*time.Second},
		{in: "1h2m3.5s", want: time.Hour + 2*time.Minute + 3500*time.Millisecond},
		{in: "-250ms", want: -250 * time.Millisecond},
		{in: "10", err: true},
		{in: "ten minutes", err: true},
		{in: "+-5m", err: true},
		{in: "5 m", err: true},
	} {
		got, err := parseClockOffset(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseClockOffset(%q): err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("parseClockOffset(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// waitOffset polls c until its offset is want (the poller runs every 5ms).
func waitOffset(t *testing.T, c *offsetClock, want time.Duration) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Offset() != want {
		if time.Now().After(deadline) {
			t.Fatalf("offset %v, want %v", c.Offset(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestOffsetClockFollowsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock-offset")
	write := func(s string) {
		t.Helper()
		// write and rename, as the fault suite does, so no half-written file is read
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	c, err := startOffsetClock(path, 5*time.Millisecond, nil) // missing file: 0
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.Offset() != 0 {
		t.Fatalf("missing file: offset %v, want 0", c.Offset())
	}
	steps := []struct {
		content string
		want    time.Duration
	}{
		{"+10m", 10 * time.Minute},
		{"-90s\n", -90 * time.Second},
		{"garbage", -90 * time.Second}, // malformed: keep the previous offset
		{"", 0},
		{"-5m", -5 * time.Minute},
		{"+5m", 5 * time.Minute},
	}
	for _, s := range steps {
		write(s.content)
		if s.content == "garbage" {
			time.Sleep(50 * time.Millisecond) // several polls
		}
		waitOffset(t, c, s.want)
	}
	// the clock really moves by the offset
	if d := c.Now().Sub(time.Now()); d < 5*time.Minute-time.Second || d > 5*time.Minute+time.Second {
		t.Fatalf("Now() is %v ahead, want about 5m", d)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitOffset(t, c, 0) // removed: back to 0
	c.Stop()
	c.Stop() // idempotent
}

func TestOffsetClockStartErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("ten minutes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := startOffsetClock(bad, time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "--debug-clock-offset-file") {
		t.Fatalf("malformed file at start: err %v, want a --debug-clock-offset-file error", err)
	}
	if _, err := startOffsetClock(dir, time.Millisecond, nil); err == nil { // a directory cannot be read
		t.Fatal("directory as offset file: no error")
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("-1h"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := startOffsetClock(ok, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.Offset() != -time.Hour {
		t.Fatalf("offset at start %v, want -1h", c.Offset())
	}
}

func TestCheckDialAddr(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"10.77.0.11:7411", true},
		{"node-0.factstr.svc:7401", true},
		{"[::1]:7401", true},
		{"10.77.0.11", false},
		{":7411", false},
		{"0.0.0.0:7411", false},
		{"[::]:7411", false},
		{"10.77.0.11:0", false},
		{"10.77.0.11:70000", false},
		{"10.77.0.11:raft", false},
	} {
		if err := checkDialAddr(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkDialAddr(%q): err %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestServeRejectsBadRaftAdvertise(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := serve(ctx, []string{"--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--raft-advertise-addr", "0.0.0.0:7411", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "--raft-advertise-addr") {
		t.Fatalf("serve with a wildcard --raft-advertise-addr: err %v", err)
	}
	err = serve(ctx, []string{"--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--debug-clock-offset-file", t.TempDir(), "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "--debug-clock-offset-file") {
		t.Fatalf("serve with a directory as --debug-clock-offset-file: err %v", err)
	}
}
