package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/testpki"
)

func TestServeRaftTLSNeedsAllTLSFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert, key := testpki.WriteCert(t, dir, "node", ca.Issue(t, "node"))
	for name, tlsArgs := range map[string][]string{
		"no TLS flags": nil,
		"no CA":        {"--tls-cert", cert, "--tls-key", key},
		"no cert":      {"--tls-ca", ca.WriteCA(t, dir, "ca.pem")},
	} {
		args := append([]string{"--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--log-level", "error", "--raft-tls"}, tlsArgs...)
		err := serve(ctx, args)
		if err == nil || !strings.Contains(err.Error(), "--raft-tls needs --tls-cert, --tls-key and --tls-ca") {
			t.Errorf("%s: serve --raft-tls: err %v", name, err)
		}
	}
}
