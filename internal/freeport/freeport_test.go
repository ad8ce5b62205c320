package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestGetUniqueAndBindable(t *testing.T) {
	for _, udp := range []bool{false, true} {
		t.Run(fmt.Sprintf("udp=%v", udp), func(t *testing.T) {
			seen := map[int]bool{}
			for range 50 {
				p := T(t, udp)
				if seen[p] {
					t.Fatalf("port %d handed out twice", p)
				}
				seen[p] = true
			}
			p := T(t, udp)
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d is not free for TCP: %v", p, err)
			}
			defer l.Close()
			if udp {
				u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
				if err != nil {
					t.Fatalf("port %d is not free for UDP: %v", p, err)
				}
				u.Close()
			}
		})
	}
}

func TestGetN(t *testing.T) {
	ps, err := GetN(12, true)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if p <= 0 || seen[p] {
			t.Fatalf("GetN = %v: want 12 distinct ports", ps)
		}
		seen[p] = true
	}
}
