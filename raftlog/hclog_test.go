package raftlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func captureLogger(level slog.Level) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), &buf
}

func TestHCLogAdapter(t *testing.T) {
	l, buf := captureLogger(LevelTrace)
	hl := NewHCLogger(l).Named("raft").Named("net").With("node", "n1")
	hl.Trace("tick", "peer", "n2")
	hl.Warn("slow", "ms", 12, "dangling")
	got := buf.String()
	for _, want := range []string{
		`level=DEBUG-4 msg=tick logger=raft.net node=n1 peer=n2`,
		`level=WARN msg=slow logger=raft.net node=n1 ms=12 EXTRA_VALUE_AT_END=dangling`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if hl.Name() != "raft.net" || hl.ResetNamed("x").Name() != "x" {
		t.Errorf("names: %q", hl.Name())
	}

	l, buf = captureLogger(slog.LevelInfo)
	hl = NewHCLogger(l)
	if hl.IsDebug() || !hl.IsInfo() || hl.GetLevel() != hclog.Info {
		t.Errorf("levels: debug=%v info=%v get=%v", hl.IsDebug(), hl.IsInfo(), hl.GetLevel())
	}
	hl.Debug("hidden")
	if buf.Len() != 0 {
		t.Errorf("debug leaked through an info handler: %q", buf)
	}
}

func TestStdLogger(t *testing.T) {
	l, buf := captureLogger(slog.LevelDebug)
	std := StdLogger(l, slog.LevelInfo)
	std.Printf("[DEBUG] memberlist: Stream connection from=%s", "10.0.0.1:7946")
	std.Printf("[ERR] memberlist: Failed to send ping: %s", "timeout")
	std.Printf("[WARN] memberlist: Refuting a dead message")
	std.Printf("no tag at all")
	std.Printf("[NOPE] unknown tag")
	want := `level=DEBUG msg="memberlist: Stream connection from=10.0.0.1:7946"
level=ERROR msg="memberlist: Failed to send ping: timeout"
level=WARN msg="memberlist: Refuting a dead message"
level=INFO msg="no tag at all"
level=INFO msg="[NOPE] unknown tag"
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
