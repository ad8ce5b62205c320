package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logSink collects a test's log lines and forwards them to t.Log until the
// test ends (memberlist goroutines may log after that, and t.Log would
// panic).
type logSink struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
	done  bool
}

func newLogSink(t testing.TB) *logSink {
	s := &logSink{t: t}
	// Registered first, so it runs last: after every Shutdown.
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	if !s.done {
		s.t.Log(line)
	}
	return len(p), nil
}

func (s *logSink) contains(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func (s *logSink) logger(node string) *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test_node", node)
}

// freeAddr returns a host:port on a random 127.x.y.z address whose port is
// free for both TCP and UDP right now. A random loopback IP (Linux routes
// all of 127/8 to lo) makes a collision with another test process, which
// could grab the port between our check and memberlist's bind, practically
// impossible. Where only 127.0.0.1 works, it falls back to that.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", rand.IntN(254)+1, rand.IntN(256), rand.IntN(254)+1)
		if a, ok := tryPort(ip, 0); ok {
			return a
		}
	}
	for range 50 {
		if a, ok := tryPort("127.0.0.1", 0); ok {
			return a
		}
	}
	t.Fatal("no free TCP+UDP port on loopback")
	return ""
}

// freeAddrSamePort returns another loopback address with the same port as
// addr, for a DNS name that resolves to several IPs with one port.
func freeAddrSamePort(t testing.TB, addr string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", rand.IntN(254)+1, rand.IntN(256), rand.IntN(254)+1)
		if a, ok := tryPort(ip, p); ok {
			return a
		}
	}
	t.Skip("cannot find a second loopback IP with the same free port (needs 127/8 routed to lo)")
	return ""
}

func tryPort(ip string, port int) (string, bool) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return "", false
	}
	defer l.Close()
	addr := l.Addr().(*net.TCPAddr)
	u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(addr.Port)))
	if err != nil {
		return "", false
	}
	u.Close()
	return net.JoinHostPort(ip, strconv.Itoa(addr.Port)), true
}

// testConfig is a valid config for node id bound to bind, with fast timings.
func testConfig(sink *logSink, id, bind string, join ...string) Config {
	return Config{
		BindAddr:      bind,
		Join:          join,
		RetryInterval: 50 * time.Millisecond,
		Tune:          FastTimings,
		Logger:        sink.logger(id),
		Meta: Meta{
			NodeID:      id,
			RaftAddr:    id + ".factstr.test:7000",
			GRPCAddr:    id + ".factstr.test:7001",
			Incarnation: "inc-" + id,
			Version:     "test",
		},
	}
}

// startNode starts a node that is shut down when the test ends. Its join
// loop runs until then (t.Context).
func startNode(t testing.TB, cfg Config) *Membership {
	t.Helper()
	m, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Meta.NodeID, err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.Meta.NodeID, err)
		}
	})
	return m
}

// waitFor polls cond until it holds or timeout passes. Gossip converges
// asynchronously; polling with a deadline is the only honest way to wait.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func aliveIDs(m *Membership) []string {
	var ids []string
	for _, mb := range m.Members() {
		if mb.State == StateAlive {
			ids = append(ids, mb.Meta.NodeID)
		}
	}
	return ids
}

// waitAlive waits until every node sees exactly the given alive members.
func waitAlive(t testing.TB, timeout time.Duration, want []string, nodes ...*Membership) {
	t.Helper()
	wantS := strings.Join(want, ",")
	for _, n := range nodes {
		waitFor(t, timeout, fmt.Sprintf("%s to see alive members %s (sees %v)", n.name, wantS, aliveIDs(n)), func() bool {
			return strings.Join(aliveIDs(n), ",") == wantS
		})
	}
}

// nextEvent returns the first event on ch that matches, or fails.
func nextEvent(t testing.TB, ch <-chan Event, timeout time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for event: %s", timeout, what)
		}
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
