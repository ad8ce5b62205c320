// Package logtag reads the "[LEVEL] " tag that hashicorp's older libraries
// (memberlist, and hashicorp/raft through go-hclog's standard-logger
// bridge) put at the start of a log line, so their lines become slog
// records at the level they meant.
package logtag

import (
	"log/slog"
	"strings"
)

// LevelTrace is the slog level of a "[TRACE]" line: below Debug, as
// go-hclog's Trace is.
const LevelTrace = slog.LevelDebug - 4

// Parse strips a leading "[LEVEL]" tag and the spaces after it from line
// and returns the level it names. A line without a tag, or with one it does
// not know, is returned as is with def.
func Parse(line string, def slog.Level) (slog.Level, string) {
	if !strings.HasPrefix(line, "[") {
		return def, line
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return def, line
	}
	var level slog.Level
	switch line[1:end] {
	case "TRACE":
		level = LevelTrace
	case "DEBUG":
		level = slog.LevelDebug
	case "INFO":
		level = slog.LevelInfo
	case "WARN", "WARNING":
		level = slog.LevelWarn
	case "ERR", "ERROR":
		level = slog.LevelError
	default:
		return def, line
	}
	return level, strings.TrimLeft(line[end+1:], " ")
}
