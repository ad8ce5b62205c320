package membership

import (
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/factstr/factstr-go/internal/logtag"
)

// newStdLogger returns a *log.Logger, which is all memberlist accepts, that
// forwards each line to l at the level its "[DEBUG]"-style prefix names.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(stdLogWriter{l: l}, "", 0)
}

// stdLogWriter turns memberlist's log lines into slog records. log.Logger
// calls Write once per line and serialises the calls.
type stdLogWriter struct {
	l *slog.Logger
}

func (w stdLogWriter) Write(p []byte) (int, error) {
	level, msg := parseStdLogLine(string(p))
	if level == slog.LevelError && strings.HasPrefix(msg, "Conflicting address for ") {
		// memberlist logs this for every alive message about the claimant,
		// many a second. The conflict delegate logs it at Error, rate
		// limited and with both incarnations; this copy is only detail.
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if w.l.Enabled(ctx, level) {
		w.l.Log(ctx, level, msg)
	}
	return len(p), nil
}

// parseStdLogLine splits "[WARN] memberlist: msg\n" into a level and "msg".
// A line without a known prefix is logged at Info.
func parseStdLogLine(line string) (slog.Level, string) {
	level, msg := logtag.Parse(strings.TrimRight(line, "\r\n"), slog.LevelInfo)
	// The logger attribute already says where the line comes from.
	return level, strings.TrimPrefix(strings.TrimSpace(msg), "memberlist: ")
}
