package raftlog

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/factstr/factstr-go/internal/logtag"
)

// LevelTrace is the slog level hclog's Trace maps to: below Debug, so
// raft's per-RPC chatter stays out of debug logs unless asked for.
const LevelTrace = logtag.LevelTrace

// NewHCLogger returns an hclog.Logger that forwards to l (nil means
// slog.Default()). hashicorp/raft and its relatives log only through
// hclog; this keeps one logging pipeline. Names given with Named appear as
// the "logger" attribute, joined with dots as hclog does.
func NewHCLogger(l *slog.Logger) hclog.Logger {
	return newHCLogAdapter(l)
}

func newHCLogAdapter(l *slog.Logger) *hclogAdapter {
	if l == nil {
		l = slog.Default()
	}
	return &hclogAdapter{base: l}
}

// hclogAdapter is immutable; With and Named return copies.
type hclogAdapter struct {
	base    *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, Off (callers never log at Off)
		return slog.LevelInfo
	}
}

// log must be called exactly one frame below the hclog method so the
// record's source location points at the caller in raft.
func (a *hclogAdapter) log(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	h := a.base.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, log, the hclog method
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	if a.name != "" {
		r.AddAttrs(slog.String("logger", a.name))
	}
	r.Add(a.implied...)
	if len(args)%2 == 1 {
		// hclog's convention for a dangling value.
		args = append(args[:len(args)-1:len(args)-1], "EXTRA_VALUE_AT_END", args[len(args)-1])
	}
	r.Add(args...)
	_ = h.Handle(ctx, r)
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	a.log(slogLevel(level), msg, args)
}
func (a *hclogAdapter) Trace(msg string, args ...any) { a.log(LevelTrace, msg, args) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.log(slog.LevelDebug, msg, args) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.log(slog.LevelInfo, msg, args) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.log(slog.LevelWarn, msg, args) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.log(slog.LevelError, msg, args) }

func (a *hclogAdapter) enabled(l slog.Level) bool { return a.base.Enabled(context.Background(), l) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(LevelTrace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(slog.LevelError) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(a.implied[:len(a.implied):len(a.implied)], args...)
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel is a no-op: the slog handler owns the level.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel reports the lowest level the slog handler accepts.
func (a *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsTrace():
		return hclog.Trace
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	case a.IsError():
		return hclog.Error
	default:
		return hclog.Off
	}
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &stdWriter{a: a, level: slog.LevelInfo, infer: true}
	if opts != nil {
		if opts.ForceLevel != hclog.NoLevel {
			w.level, w.infer = slogLevel(opts.ForceLevel), false
		} else {
			w.infer = opts.InferLevels
		}
	}
	return w
}

// StdLogger returns a *log.Logger that forwards each line to l. A leading
// level tag in the style hashicorp's older libraries use, such as
// memberlist's "[DEBUG] memberlist: ...", sets the slog level and is
// stripped; lines without one are logged at level. Give it to
// memberlist.Config.Logger.
func StdLogger(l *slog.Logger, level slog.Level) *log.Logger {
	return log.New(&stdWriter{a: newHCLogAdapter(l), level: level, infer: true}, "", 0)
}

type stdWriter struct {
	a     *hclogAdapter
	level slog.Level // used when infer is off or no tag is found
	infer bool
}

// Write gets one whole line per call from log.Logger.
func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\r\n"))
	level := w.level
	if w.infer {
		level, msg = logtag.Parse(msg, w.level)
	} else {
		_, msg = logtag.Parse(msg, w.level)
	}
	if w.a.enabled(level) {
		r := slog.NewRecord(time.Now(), level, msg, 0)
		if w.a.name != "" {
			r.AddAttrs(slog.String("logger", w.a.name))
		}
		r.Add(w.a.implied...)
		_ = w.a.base.Handler().Handle(context.Background(), r)
	}
	return len(p), nil
}
