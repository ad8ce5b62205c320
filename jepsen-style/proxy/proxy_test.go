package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every connection until closed.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
	return time.Since(start)
}

func TestBytesIntactAndOrdered(t *testing.T) {
	for _, s := range []Settings{{}, {Delay: 2 * time.Millisecond, Jitter: 5 * time.Millisecond}} {
		t.Run(s.Delay.String(), func(t *testing.T) {
			p := startProxy(t, echoServer(t))
			p.Set(s)
			var wg sync.WaitGroup
			for k := 0; k < 8; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", p.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					data := make([]byte, 1<<20)
					_, _ = rand.Read(data)
					errc := make(chan error, 1)
					go func() {
						// many writes of odd sizes, with pauses so jitter applies per chunk
						rest := data
						for i := 0; len(rest) > 0; i++ {
							n := min(len(rest), 1+(i*7919)%50000)
							if _, err := c.Write(rest[:n]); err != nil {
								errc <- err
								return
							}
							rest = rest[n:]
							if i%10 == 0 {
								time.Sleep(time.Millisecond)
							}
						}
						errc <- c.(*net.TCPConn).CloseWrite()
					}()
					_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
					got, err := io.ReadAll(c) // until the echo server's half-close
					if err != nil {
						t.Error(err)
						return
					}
					if err := <-errc; err != nil {
						t.Error(err)
					}
					if !bytes.Equal(got, data) {
						t.Errorf("got %d bytes, want %d, equal prefix %d", len(got), len(data), commonPrefix(got, data))
					}
				}()
			}
			wg.Wait()
			if st := p.Stats(); st.Accepted != 8 || st.Bytes != 2*8<<20 {
				t.Errorf("stats %+v, want 8 accepted, %d bytes", st, 2*8<<20)
			}
		})
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestDelayApplied(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p)
	msg := []byte("ping")
	roundTrip(t, c, msg) // connected
	const d = 60 * time.Millisecond
	p.Set(Settings{Delay: d})
	for i := 0; i < 3; i++ {
		if rt := roundTrip(t, c, msg); rt < 2*d {
			t.Fatalf("round trip %v with %v each way, want at least %v", rt, d, 2*d)
		}
	}
	p.Set(Settings{Delay: d, Jitter: 40 * time.Millisecond})
	if rt := roundTrip(t, c, msg); rt < 2*d {
		t.Fatalf("round trip %v with %v each way plus jitter, want at least %v", rt, d, 2*d)
	}
	p.Set(Settings{})
	for i := 0; i < 3; i++ {
		roundTrip(t, c, msg) // still works; not asserting an upper bound
	}
}

// Connections do not queue behind each other's delays.
func TestDelayPerConnection(t *testing.T) {
	p := startProxy(t, echoServer(t))
	const n, d = 20, 100 * time.Millisecond
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = dial(t, p)
		roundTrip(t, conns[i], []byte("x"))
	}
	p.Set(Settings{Delay: d})
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 2; k++ {
				if _, err := c.Write([]byte("abc")); err != nil {
					t.Error(err)
					return
				}
				b := make([]byte, 3)
				if _, err := io.ReadFull(c, b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if el < 4*d {
		t.Fatalf("two round trips took %v, want at least %v", el, 4*d)
	}
	// serialized, 20 connections would take 20 × 400ms = 8s
	if el > 4*time.Second {
		t.Fatalf("%d connections × 2 round trips took %v: connections wait for each other", n, el)
	}
}

func TestDelayBackToZeroReleasesQueued(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("x"))
	p.Set(Settings{Delay: time.Minute})
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); err == nil {
		t.Fatalf("read %d bytes despite a 1 minute delay", n)
	}
	p.Set(Settings{})
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "held" {
		t.Fatalf("after the delay went back to 0: %q, %v", b, err)
	}
}

func TestBlackholeHoldsThenReleases(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c := dial(t, p)
	roundTrip(t, c, []byte("x"))
	p.Set(Settings{Blackhole: true})
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, p) // a new connection during the blackhole is held too
	if _, err := c2.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	for _, cc := range []net.Conn{c, c2} {
		_ = cc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := cc.Read(make([]byte, 3)); err == nil {
			t.Fatalf("read %d bytes through a blackhole", n)
		}
	}
	p.Set(Settings{})
	for i, cc := range []net.Conn{c, c2} {
		_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 3)
		if _, err := io.ReadFull(cc, b); err != nil || string(b) != []string{"one", "two"}[i] {
			t.Fatalf("conn %d after the blackhole: %q, %v", i, b, err)
		}
	}
}

func TestCloseIsClean(t *testing.T) {
	base := runtime.NumGoroutine()
	target := echoServer(t)
	p, err := Listen("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, []byte("hi"))
		conns = append(conns, c)
	}
	p.Set(Settings{Delay: time.Hour}) // writers sleeping
	for _, c := range conns {
		_, _ = c.Write([]byte("late"))
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := p.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("client read after Close: %v, want EOF or reset", err)
		}
	}
	if _, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
	if st := p.Stats(); st.Active != 0 {
		t.Fatalf("%d connections active after Close", st.Active)
	}
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+3 && time.Now().Before(deadline) { // + the echo server's
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+3 {
		t.Fatalf("%d goroutines after Close, %d before", g, base)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUnreachableTargetClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, dead)
	c := dial(t, p)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read through a proxy to a dead target: %v, want EOF or reset", err)
	}
}

func TestControlEndpoint(t *testing.T) {
	p := startProxy(t, echoServer(t))
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	ctl := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	want := Settings{Delay: 120 * time.Millisecond, Jitter: 30 * time.Millisecond}
	if err := SetRemote(ctx, ctl, want); err != nil {
		t.Fatal(err)
	}
	if p.Settings() != want {
		t.Fatalf("settings %+v, want %+v", p.Settings(), want)
	}
	got, st, err := GetRemote(ctx, ctl)
	if err != nil || got != want {
		t.Fatalf("GetRemote: %+v, %v", got, err)
	}
	if st.Accepted != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := SetRemote(ctx, ctl, Settings{Blackhole: true}); err != nil || !p.Settings().Blackhole {
		t.Fatalf("blackhole: %v, %+v", err, p.Settings())
	}
	if _, _, err := call(ctx, "PUT", ctl, []byte(`{"delay":"soon"}`)); err == nil {
		t.Fatal("bad delay accepted")
	}
	if _, _, err := call(ctx, "PUT", ctl, []byte(`{"delay":"-1s"}`)); err == nil {
		t.Fatal("negative delay accepted")
	}
	if _, _, err := call(ctx, "DELETE", ctl, nil); err == nil {
		t.Fatal("DELETE accepted")
	}
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec("listen=10.77.0.11:7411,target=10.77.0.11:7401,control=10.77.0.11:7412")
	if err != nil {
		t.Fatal(err)
	}
	if s != (Spec{Listen: "10.77.0.11:7411", Target: "10.77.0.11:7401", Control: "10.77.0.11:7412"}) {
		t.Fatalf("%+v", s)
	}
	if r, err := ParseSpec(s.String()); err != nil || r != s {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "listen=1.2.3.4:1", "listen=1.2.3.4:1,target=x,control=1.2.3.4:2",
		"listen=1.2.3.4:1,target=1.2.3.4:2,control=1.2.3.4:3,extra=1.2.3.4:4", "listen"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q): no error", bad)
		}
	}
}

func TestServe(t *testing.T) {
	target := echoServer(t)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	spec := Spec{Listen: free(), Target: target, Control: free()}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var logs []string
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, spec, func(f string, a ...any) {
			mu.Lock()
			logs = append(logs, f)
			mu.Unlock()
		})
	}()
	var err error
	for i := 0; i < 100; i++ {
		if err = SetRemote(ctx, spec.Control, Settings{Delay: 30 * time.Millisecond}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", spec.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rt := roundTrip(t, c, []byte("hello")); rt < 60*time.Millisecond {
		t.Fatalf("round trip %v, want at least 60ms", rt)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) < 3 { // start, control PUT, stop
		t.Fatalf("logs %q", logs)
	}
}
