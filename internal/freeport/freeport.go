// Package freeport hands out loopback ports for tests and benchmarks that
// start servers on fixed ports (a node must know its peers' addresses
// before they listen, so port 0 will not do).
//
// Ports are picked below the kernel's ephemeral range when it can be read,
// so that a port handed out is not taken by an outgoing connection's source
// port before (or while) the server binds it, or between a kill and a
// restart. Each port is checked by binding it (TCP, and UDP too for gossip)
// and is never handed out twice by one process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// handedOut is process-wide on purpose: two tests of one binary running in
// parallel must not get the same port.
var handedOut struct {
	mu   sync.Mutex
	used map[int]bool
	lo   int
	hi   int // exclusive
}

// portRange returns the range below the ephemeral ports, or -1, -1 when it
// is unknown (then the kernel picks).
func portRange() (lo, hi int) {
	if handedOut.lo != 0 {
		return handedOut.lo, handedOut.hi
	}
	handedOut.lo, handedOut.hi = -1, -1
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if ephLo, err := strconv.Atoi(f[0]); err == nil && ephLo > 12000 {
				handedOut.lo, handedOut.hi = 10000, ephLo
			}
		}
	}
	return handedOut.lo, handedOut.hi
}

// Get returns a port on 127.0.0.1 that is free for TCP (and for UDP too
// when udp is true) right now and was not returned before by this process.
func Get(udp bool) (int, error) {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	if handedOut.used == nil {
		handedOut.used = make(map[int]bool)
	}
	lo, hi := portRange()
	for range 200 {
		want := 0
		if lo > 0 {
			want = lo + rand.IntN(hi-lo)
			if handedOut.used[want] {
				continue
			}
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want))
		if err != nil {
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := !handedOut.used[port]
		if ok && udp {
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				u.Close()
			} else {
				ok = false
			}
		}
		l.Close()
		if ok {
			handedOut.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port on 127.0.0.1 after 200 attempts")
}

// GetN returns n distinct ports as Get does.
func GetN(n int, udp bool) ([]int, error) {
	out := make([]int, 0, n)
	for range n {
		p, err := Get(udp)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// T is Get for a test: it fails t when no port is free.
func T(t testing.TB, udp bool) int {
	t.Helper()
	p, err := Get(udp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
