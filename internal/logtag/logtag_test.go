package logtag

import (
	"log/slog"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line      string
		def       slog.Level
		wantLevel slog.Level
		wantMsg   string
	}{
		{"[TRACE] x", slog.LevelInfo, LevelTrace, "x"},
		{"[DEBUG] memberlist: x", slog.LevelInfo, slog.LevelDebug, "memberlist: x"},
		{"[INFO] x", slog.LevelWarn, slog.LevelInfo, "x"},
		{"[WARN] x", slog.LevelInfo, slog.LevelWarn, "x"},
		{"[WARNING]  x", slog.LevelInfo, slog.LevelWarn, "x"},
		{"[ERR] x", slog.LevelInfo, slog.LevelError, "x"},
		{"[ERROR] x", slog.LevelInfo, slog.LevelError, "x"},
		{"[NOPE] x", slog.LevelWarn, slog.LevelWarn, "[NOPE] x"},
		{"no tag", slog.LevelDebug, slog.LevelDebug, "no tag"},
		{"[unclosed", slog.LevelInfo, slog.LevelInfo, "[unclosed"},
		{"", slog.LevelInfo, slog.LevelInfo, ""},
		{"[INFO]", slog.LevelDebug, slog.LevelInfo, ""},
	}
	for _, tt := range tests {
		level, msg := Parse(tt.line, tt.def)
		if level != tt.wantLevel || msg != tt.wantMsg {
			t.Errorf("Parse(%q, %v) = %v %q, want %v %q", tt.line, tt.def, level, msg, tt.wantLevel, tt.wantMsg)
		}
	}
}
