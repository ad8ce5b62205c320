package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testcluster"
	"github.com/factstr/factstr-go/internal/testpki"
)

type testPKI struct {
	dir               string
	caPool            *x509.CertPool
	caFile            string
	nodeCert, nodeKey string
	clientCert        tls.Certificate
	strangerCert      tls.Certificate
}

// newPKI makes a CA, a node certificate for 127.0.0.1 (server and client
// use: nodes dial each other with it, over gRPC and, with --raft-tls, Raft),
// a client certificate, and a client certificate from a different CA.
func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "factstr test CA")
	p := &testPKI{dir: dir, caPool: ca.Pool, caFile: ca.WriteCA(t, dir, "ca.pem")}
	p.nodeCert, p.nodeKey = testpki.WriteCert(t, dir, "node", ca.Issue(t, "node"))
	p.clientCert = ca.Issue(t, "client")
	p.strangerCert = testpki.NewCA(t, "another CA").Issue(t, "stranger")
	return p
}

// TestMutualTLSAndToken runs three nodes with mutual TLS on gRPC and Raft
// (--raft-tls) and a token, checks that appends (forwarded ones too) work
// and that clients without the right certificate or token are refused, and
// that a node started without --raft-tls never becomes a voter while the
// cluster keeps working.
func TestMutualTLSAndToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	bin := testcluster.Build(t)
	pki := newPKI(t)
	const token = "s3cret-token"
	type ports struct{ grpc, raft, gossip int }
	nodes := make([]ports, 3)
	for i := range nodes {
		for _, p := range []*int{&nodes[i].grpc, &nodes[i].raft, &nodes[i].gossip} {
			port, err := freeport.Get(p == &nodes[i].gossip)
			if err != nil {
				t.Fatal(err)
			}
			*p = port
		}
	}
	var addrs []string
	for i, n := range nodes {
		var join []string
		for j, o := range nodes {
			if j != i {
				join = append(join, fmt.Sprintf("127.0.0.1:%d", o.gossip))
			}
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", n.grpc))
		cmd := exec.Command(bin, "serve",
			"--node-id", fmt.Sprintf("t%d", i+1), "--data-dir", filepath.Join(pki.dir, fmt.Sprintf("data%d", i+1)),
			"--grpc-addr", addrs[i], "--raft-addr", fmt.Sprintf("127.0.0.1:%d", n.raft), "--gossip-addr", fmt.Sprintf("127.0.0.1:%d", n.gossip),
			"--bootstrap-expect", "3", "--join", join[0]+","+join[1],
			"--tls-cert", pki.nodeCert, "--tls-key", pki.nodeKey, "--tls-ca", pki.caFile, "--token", token, "--raft-tls",
			"--raft-heartbeat-timeout", "300ms", "--raft-election-timeout", "300ms")
		logf, err := os.Create(filepath.Join(pki.dir, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if _, err := testcluster.Spawn(t, fmt.Sprintf("t%d", i+1), cmd); err != nil {
			t.Fatal(err)
		}
	}
	tlsCfg := func(cert *tls.Certificate) *tls.Config {
		c := &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		return c
	}
	dumpLogs := func() {
		for i := range nodes {
			b, _ := os.ReadFile(filepath.Join(pki.dir, fmt.Sprintf("node%d.log", i+1)))
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("node %d log tail:\n%s", i+1, b)
		}
	}

	// Through every node, so that at least two appends are forwarded to the
	// leader over the peer service, which needs TLS and the token too.
	for i, addr := range addrs {
		c, err := client.Dial(context.Background(), []string{addr}, client.WithTLS(tlsCfg(&pki.clientCert)), client.WithToken(token), client.WithRetryTimeout(45*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		r, err := c.Append(ctx, []contract.NewEvent{{Type: "tls", Payload: []byte(fmt.Sprintf(`{"via":%d}`, i))}})
		cancel()
		c.Close()
		if err != nil {
			dumpLogs()
			t.Fatalf("append over mutual TLS through node %d: %v", i+1, err)
		}
		if r.CommittedCount != 1 {
			t.Fatalf("append through node %d: %+v", i+1, r)
		}
	}

	refused := func(name string, opts []client.Option, want codes.Code) {
		t.Helper()
		opts = append(opts, client.WithRetryTimeout(2*time.Second))
		c, err := client.Dial(context.Background(), addrs[:1], opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Append(ctx, []contract.NewEvent{{Type: "tls", Payload: []byte(`{"refused":true}`)}})
		if err == nil {
			t.Fatalf("%s: append succeeded", name)
		}
		if got := status.Code(errors.Unwrap(err)); want != codes.OK && status.Code(err) != want && got != want {
			t.Fatalf("%s: error %v (code %v), want code %v", name, err, status.Code(err), want)
		}
	}
	refused("plaintext client", []client.Option{client.WithToken(token)}, codes.Unavailable)
	refused("TLS client without a certificate", []client.Option{client.WithTLS(tlsCfg(nil)), client.WithToken(token)}, codes.Unavailable)
	refused("client certificate of another CA", []client.Option{client.WithTLS(tlsCfg(&pki.strangerCert)), client.WithToken(token)}, codes.Unavailable)
	refused("wrong token", []client.Option{client.WithTLS(tlsCfg(&pki.clientCert)), client.WithToken("wrong")}, codes.Unauthenticated)
	refused("no token", []client.Option{client.WithTLS(tlsCfg(&pki.clientCert))}, codes.Unauthenticated)

	// Exactly the three good appends are in the log.
	c, err := client.Dial(context.Background(), addrs, client.WithTLS(tlsCfg(&pki.clientCert)), client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Query(context.Background(), contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 3 {
		t.Fatalf("log holds %d events, want the 3 appended over TLS", len(res.Events))
	}

	// A node without --raft-tls (same certificates and token otherwise)
	// joins gossip and is added as a nonvoter, but the leader's TLS
	// handshakes to its plain Raft port fail, so it never catches up and is
	// never promoted. Both sides say so in their logs.
	plain := startExtraNode(t, pki.dir, "t4", "--join", fmt.Sprintf("127.0.0.1:%d", nodes[0].gossip),
		"--tls-cert", pki.nodeCert, "--tls-key", pki.nodeKey, "--tls-ca", pki.caFile, "--token", token)
	lineWith := func(path, s string) string {
		b, _ := os.ReadFile(path)
		for l := range strings.Lines(string(b)) {
			if strings.Contains(l, s) {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	var leaderLine, plainLine string
	sawLogs := func() bool {
		for i := range nodes {
			if leaderLine == "" {
				leaderLine = lineWith(filepath.Join(pki.dir, fmt.Sprintf("node%d.log", i+1)), "TLS handshake")
			}
		}
		plainLine = lineWith(plain.logPath, "unknown rpc type 22")
		return leaderLine != "" && plainLine != ""
	}
	waitFor(t, 30*time.Second, sawLogs, func() string {
		return "the leader's failed TLS handshakes to t4 and t4's \"unknown rpc type 22\" in the logs"
	})
	t.Logf("leader: %s\nt4: %s", leaderLine, plainLine)
	time.Sleep(3 * time.Second) // past PromoteAfter (2s): it would have been promoted by now
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Append(ctx, []contract.NewEvent{{Type: "tls", Payload: []byte(`{"after":"t4"}`)}})
	if err != nil || r.CommittedCount != 1 {
		dumpLogs()
		t.Fatalf("append with t4 around: %+v, %v", r, err)
	}
	st, err := statusAt(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(voters(st), "t4") || len(voters(st)) != 3 {
		t.Fatalf("t4 without --raft-tls became a voter: %s", describeMembers(st))
	}
	t.Logf("with t4 (no --raft-tls) running: %s", describeMembers(st))
}
