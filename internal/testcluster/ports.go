//go:build unix

package testcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports are picked below the kernel's ephemeral range when it can be read,
// so that a port we handed out is not taken by an outgoing connection's
// source port before (or while) the node binds it, or between a Kill and a
// Restart. Each port is checked by binding it (TCP, and UDP for gossip) and
// is never handed out twice by this process.
var ports struct {
	mu   sync.Mutex
	used map[int]bool
	lo   int
	hi   int // exclusive
}

func portRange() (lo, hi int) {
	if ports.lo != 0 {
		return ports.lo, ports.hi
	}
	ports.lo, ports.hi = -1, -1
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if ephLo, err := strconv.Atoi(f[0]); err == nil && ephLo > 12000 {
				ports.lo, ports.hi = 10000, ephLo
			}
		}
	}
	return ports.lo, ports.hi
}

// FreePort returns a port on 127.0.0.1 that is free for TCP (and for UDP
// too when udp is true) right now and was not returned before by this
// process.
func FreePort(udp bool) (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = make(map[int]bool)
	}
	lo, hi := portRange()
	for range 200 {
		want := 0
		if lo > 0 {
			want = lo + rand.IntN(hi-lo)
			if ports.used[want] {
				continue
			}
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want))
		if err != nil {
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := !ports.used[port]
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
			ports.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("testcluster: no free port on 127.0.0.1 after 200 attempts")
}
