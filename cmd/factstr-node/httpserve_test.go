package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/httpapi/apitest"
	"github.com/factstr/factstr-go/internal/testpki"
)

// startServe runs serve with args (plus a node id, a data directory and
// fresh ports for gRPC, Raft and gossip) until the test ends, and returns a
// client of it once it answers a linearizable query (it leads); serve must
// return nil at the end.
func startServe(t *testing.T, args ...string) *client.Client {
	t.Helper()
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false))
	all := append([]string{
		"--node-id", "h1", "--data-dir", filepath.Join(t.TempDir(), "h1"),
		"--grpc-addr", grpcAddr,
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false)),
		"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true)),
		"--bootstrap-expect", "1", "--log-level", "error",
		"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms",
	}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, all) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	c, err := client.Dial(cctx, []string{grpcAddr}, client.WithRetryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Query(cctx, contract.EventQuery{}); err != nil {
		t.Fatalf("query: %v", err)
	}
	return c
}

// TestServeHTTPOverTLS: with --tls-cert/--tls-key the HTTP API serves TLS
// with the gRPC port's certificate; an open stream ends with UNAVAILABLE
// when the node shuts down, and the shutdown does not wait for it.
func TestServeHTTPOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "http test CA")
	certFile, keyFile := testpki.WriteCert(t, dir, "node", ca.Issue(t, "node"))
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{
			"--node-id", "h1", "--data-dir", filepath.Join(dir, "h1"),
			"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false)),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false)),
			"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true)),
			"--bootstrap-expect", "1", "--log-level", "error",
			"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms",
			"--tls-cert", certFile, "--tls-key", keyFile, "--http-addr", addr,
		})
	}()
	defer cancel()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	old := http.DefaultTransport
	http.DefaultTransport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { http.DefaultTransport = old })
	base := "https://" + addr

	// Poll until the port is up and the node bootstrapped (no signal
	// reaches an HTTP client before).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(base+"/v1/append", "application/json", strings.NewReader(`{"events":[{"type":"t","payload":{"n":1.50}}]}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("append over HTTPS: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	q := apitest.Decode[apitest.QueryResult](t, apitest.MustOK(t, "POST", base+"/v1/query", "", `{}`))
	if len(q.Events) != 1 || string(q.Events[0].Payload) != `{"n":1.50}` {
		t.Fatalf("query over HTTPS: %+v", q)
	}
	if code, _ := apitest.Call(t, "GET", "http://"+addr+"/v1/status", "", ""); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: %d, want 400", code)
	}
	st, _, _ := apitest.OpenSSE(t, "GET", base+"/v1/stream", "", "", "")
	if ev := st.Next(t); ev.Name != "subscribed" {
		t.Fatalf("stream: %+v", ev)
	}
	cancel()
	if ev := st.Next(t); ev.Name != "error" || !strings.Contains(ev.Data, "UNAVAILABLE") {
		t.Errorf("stream at shutdown: %+v, want an UNAVAILABLE error event", ev)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeHTTPAddrTaken: an explicit --http-addr that is taken stops the
// node; the default one only switches HTTP off.
func TestServeHTTPAddrTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = serve(context.Background(), []string{
		"--node-id", "h1", "--data-dir", filepath.Join(t.TempDir(), "h1"),
		"--grpc-addr", "127.0.0.1:0", "--raft-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, false)),
		"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true)), "--log-level", "error",
		"--http-addr", l.Addr().String(),
	})
	if err == nil || !strings.Contains(err.Error(), "listen on --http-addr") {
		t.Fatalf("serve with a taken --http-addr: %v", err)
	}
	// The default address (taken here by this test, or by anyone else)
	// does not stop a node.
	if d, err := net.Listen("tcp", defaultHTTPAddr); err == nil {
		defer d.Close()
	}
	startServe(t)
}
