package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// offsetClock is the DEBUG ONLY clock behind --debug-clock-offset-file: the
// wall clock plus an offset that a fault test writes into a file while the
// node runs (the fault suite's clock-bump and clock-strobe nemeses). It only
// moves cluster.Config.Clock, which stamps OccurredAt on the leader and sets
// the idempotency-key pruning cut-off; Raft's timers use the monotonic
// clock and are not affected.
type offsetClock struct {
	path   string
	every  time.Duration
	log    *slog.Logger
	offset atomic.Int64 // time.Duration
	last   string       // last file content seen (poller goroutine only)

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// parseClockOffset parses an offset file's content: a Go duration such as
// "-90s", "+10m" or "0". Empty (or only white space) means no offset.
func parseClockOffset(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("clock offset %q: want a Go duration such as -90s or +10m: %w", s, err)
	}
	return d, nil
}

// readClockOffset reads path; a missing file means no offset.
func readClockOffset(path string) (time.Duration, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	d, err := parseClockOffset(string(b))
	return d, string(b), err
}

// startOffsetClock reads path once (an unreadable or malformed file is an
// error) and then polls it every `every` until Stop. A file that later
// becomes malformed keeps the previous offset and logs a warning.
func startOffsetClock(path string, every time.Duration, log *slog.Logger) (*offsetClock, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &offsetClock{path: path, every: every, log: log, done: make(chan struct{})}
	d, raw, err := readClockOffset(path)
	if err != nil {
		return nil, fmt.Errorf("--debug-clock-offset-file %s: %w", path, err)
	}
	c.offset.Store(int64(d))
	c.last = raw
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.poll(ctx)
	return c, nil
}

func (c *offsetClock) poll(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d, raw, err := readClockOffset(c.path)
		if raw == c.last {
			continue // unchanged (a malformed or unreadable file warns once)
		}
		c.last = raw
		if err != nil {
			c.log.Warn("debug clock: keeping the previous offset", "file", c.path, "error", err)
			continue
		}
		if old := time.Duration(c.offset.Swap(int64(d))); old != d {
			c.log.Info("debug clock: offset changed", "file", c.path, "offset", d, "previous", old)
		}
	}
}

// Offset is the current offset.
func (c *offsetClock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Now is the wall clock plus the offset (cluster.Config.Clock).
func (c *offsetClock) Now() time.Time { return time.Now().Add(c.Offset()) }

// Stop ends the poller and waits for it; safe to call more than once.
func (c *offsetClock) Stop() {
	c.once.Do(func() {
		c.cancel()
		<-c.done
	})
}
