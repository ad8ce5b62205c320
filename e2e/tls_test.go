package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
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
// use: nodes dial each other with it), a client certificate, and a client
// certificate from a different CA.
func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir, caPool: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "factstr test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	der, key := issue("node", 2, ca, caKey)
	p.nodeCert = writePEM(t, dir, "node.pem", "CERTIFICATE", der)
	kb, _ := x509.MarshalECPrivateKey(key)
	p.nodeKey = writePEM(t, dir, "node-key.pem", "EC PRIVATE KEY", kb)
	der, key = issue("client", 3, ca, caKey)
	p.clientCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCA := *caTmpl
	otherCA.SerialNumber = big.NewInt(9)
	otherDER, _ := x509.CreateCertificate(rand.Reader, &otherCA, &otherCA, &otherKey.PublicKey, otherKey)
	other, _ := x509.ParseCertificate(otherDER)
	der, key = issue("stranger", 4, other, otherKey)
	p.strangerCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

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
			port, err := testcluster.FreePort(p == &nodes[i].gossip)
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
			"--tls-cert", pki.nodeCert, "--tls-key", pki.nodeKey, "--tls-ca", pki.caFile, "--token", token,
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
}
