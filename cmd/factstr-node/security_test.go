package main

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckExposure(t *testing.T) {
	loop := serveFlags{grpcAddr: "127.0.0.1:7400", raftAddr: "127.0.0.1:7401", gossipAddr: "localhost:7402"}
	with := func(mod func(*serveFlags)) *serveFlags { f := loop; mod(&f); return &f }
	fullTLS := func(f *serveFlags) {
		f.tlsCert, f.tlsKey, f.tlsCA, f.raftTLS, f.gossipKey = "c", "k", "ca", true, "g"
	}
	for _, tc := range []struct {
		name   string
		f      *serveFlags
		tokens bool
		want   string // "" means it may start
	}{
		{"loopback, nothing", &loop, false, ""},
		{"::1, nothing", with(func(f *serveFlags) { f.grpcAddr = "[::1]:7400" }), false, ""},
		{"wildcard gRPC", with(func(f *serveFlags) { f.grpcAddr = "0.0.0.0:7400" }), true, "--grpc-addr 0.0.0.0:7400 is not a loopback address and --cluster-key is missing"},
		{"host name Raft", with(func(f *serveFlags) { f.raftAddr = "node-0.example:7401" }), true, "--raft-addr node-0.example:7401 is not a loopback address and --cluster-key is missing"},
		{"empty host gossip", with(func(f *serveFlags) { f.gossipAddr = ":7402" }), true, "--gossip-addr :7402"},
		{"private IP, key", with(func(f *serveFlags) { f.raftAddr = "10.0.0.5:7401"; f.clusterKey = "k" }), false, ""},
		{"private IP gRPC, key, no tokens", with(func(f *serveFlags) { f.grpcAddr = "10.0.0.5:7400"; f.clusterKey = "k" }), false, "--token or --auth-file is missing"},
		{"private IP gRPC, key, tokens", with(func(f *serveFlags) { f.grpcAddr = "10.0.0.5:7400"; f.clusterKey = "k" }), true, ""},
		{"private IP gRPC, full TLS set (client certs)", with(func(f *serveFlags) { f.grpcAddr = "10.0.0.5:7400"; fullTLS(f) }), false, ""},
		{"TLS without Raft TLS", with(func(f *serveFlags) { f.grpcAddr = "10.0.0.5:7400"; fullTLS(f); f.raftTLS = false }), true, "and --raft-tls is missing"},
		{"TLS without gossip key", with(func(f *serveFlags) { f.grpcAddr = "10.0.0.5:7400"; fullTLS(f); f.gossipKey = "" }), true, "and --gossip-key is missing"},
		{"wildcard HTTP, no tokens", with(func(f *serveFlags) { f.httpAddr = "0.0.0.0:7403" }), false, "--http-addr 0.0.0.0:7403 is not a loopback address and clients are not authenticated"},
		{"wildcard HTTP, tokens", with(func(f *serveFlags) { f.httpAddr = "0.0.0.0:7403" }), true, ""},
		{"wildcard HTTP, client certs", with(func(f *serveFlags) { f.httpAddr = "0.0.0.0:7403"; f.tlsCA = "ca" }), false, ""},
		{"loopback HTTP", with(func(f *serveFlags) { f.httpAddr = "127.0.0.1:7403" }), false, ""},
		{"wildcard HTTP, --insecure", with(func(f *serveFlags) { f.httpAddr = "0.0.0.0:7403"; f.insecure = true }), false, ""},
		{"wildcard, --insecure", with(func(f *serveFlags) { f.grpcAddr = "0.0.0.0:7400"; f.insecure = true }), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkExposure(tc.f, tc.tokens)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, errExposed) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("checkExposure = %v, want one line containing %q", err, tc.want)
			}
		})
	}
}
