package testpki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/testpki"
)

// TestCAIsASelfSignedAuthority: the CA certificate is a CA that signed
// itself, holds the name it was given, and its pool trusts exactly it.
func TestCAIsASelfSignedAuthority(t *testing.T) {
	ca := testpki.NewCA(t, "test ca")
	if !ca.Cert.IsCA || !ca.Cert.BasicConstraintsValid || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate: IsCA %v, basic constraints %v, key usage %b", ca.Cert.IsCA, ca.Cert.BasicConstraintsValid, ca.Cert.KeyUsage)
	}
	if ca.Cert.Subject.CommonName != "test ca" || ca.Cert.Issuer.CommonName != "test ca" {
		t.Errorf("subject %q, issuer %q, want both %q", ca.Cert.Subject.CommonName, ca.Cert.Issuer.CommonName, "test ca")
	}
	if err := ca.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("the CA certificate is not signed by its own key: %v", err)
	}
	if !ca.Key.PublicKey.Equal(ca.Cert.PublicKey) {
		t.Error("CA.Key is not the key of CA.Cert")
	}
	if ca.Key.Curve != elliptic.P256() {
		t.Errorf("curve %v, want P-256", ca.Key.Curve.Params().Name)
	}
	// The pool verifies the CA itself as a root, and nothing else.
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool}); err != nil {
		t.Errorf("the CA does not verify against its own pool: %v", err)
	}
	other := testpki.NewCA(t, "test ca")
	if _, err := other.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool}); err == nil {
		t.Error("another CA of the same name verifies against this CA's pool")
	}
	if ca.Cert.SerialNumber.Cmp(other.Cert.SerialNumber) == 0 || ca.Cert.SerialNumber.Sign() <= 0 {
		t.Errorf("serial numbers %v and %v: want positive and distinct", ca.Cert.SerialNumber, other.Cert.SerialNumber)
	}
	assertValidAroundNow(t, ca.Cert)
}

func assertValidAroundNow(t *testing.T, c *x509.Certificate) {
	t.Helper()
	now := time.Now()
	// Valid from an hour ago (clock skew between test processes) for a day.
	if !c.NotBefore.Before(now.Add(-50*time.Minute)) || !c.NotAfter.After(now.Add(23*time.Hour)) {
		t.Errorf("%s valid %v to %v; want from about an hour ago to about a day from now", c.Subject.CommonName, c.NotBefore, c.NotAfter)
	}
}

// TestIssuedChainVerifies pins down which verifications an issued
// certificate passes and which it fails: the chain to its CA verifies for
// the names it carries and the usages it was issued for; another name,
// another CA, or another usage does not.
func TestIssuedChainVerifies(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	node := ca.Issue(t, "n1")
	serverOnly := ca.Issue(t, "srv", x509.ExtKeyUsageServerAuth)
	stranger := testpki.NewCA(t, "ca") // same name, other key
	tests := []struct {
		name    string
		cert    tls.Certificate
		roots   *x509.CertPool
		dnsName string
		usage   x509.ExtKeyUsage
		wantErr any // nil, or a zero value of the x509 error type expected
	}{
		{"node as server for 127.0.0.1", node, ca.Pool, "127.0.0.1", x509.ExtKeyUsageServerAuth, nil},
		{"node as server for localhost", node, ca.Pool, "localhost", x509.ExtKeyUsageServerAuth, nil},
		{"node as client", node, ca.Pool, "", x509.ExtKeyUsageClientAuth, nil},
		{"server-only as server", serverOnly, ca.Pool, "localhost", x509.ExtKeyUsageServerAuth, nil},
		{"server-only as client", serverOnly, ca.Pool, "", x509.ExtKeyUsageClientAuth, x509.CertificateInvalidError{}},
		{"a name it does not carry", node, ca.Pool, "example.com", x509.ExtKeyUsageServerAuth, x509.HostnameError{}},
		{"an address it does not carry", node, ca.Pool, "127.0.0.2", x509.ExtKeyUsageServerAuth, x509.HostnameError{}},
		{"another CA of the same name", node, stranger.Pool, "localhost", x509.ExtKeyUsageServerAuth, x509.UnknownAuthorityError{}},
		{"no roots at all", node, x509.NewCertPool(), "localhost", x509.ExtKeyUsageServerAuth, x509.UnknownAuthorityError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cert.Leaf == nil {
				t.Fatal("Issue returned no Leaf")
			}
			// Verify from the DER bytes a peer receives, not from Leaf.
			leaf, err := x509.ParseCertificate(tt.cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			chains, err := leaf.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.dnsName, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(chains) != 1 || len(chains[0]) != 2 || !chains[0][1].Equal(ca.Cert) {
					t.Fatalf("chains %v, want leaf -> CA", chains)
				}
			case x509.CertificateInvalidError:
				if !errors.As(err, &want) || want.Reason != x509.IncompatibleUsage {
					t.Fatalf("Verify: %v, want an incompatible usage", err)
				}
			case x509.HostnameError:
				if !errors.As(err, &want) || want.Host != tt.dnsName {
					t.Fatalf("Verify: %v, want a hostname error for %s", err, tt.dnsName)
				}
			case x509.UnknownAuthorityError:
				if !errors.As(err, &want) {
					t.Fatalf("Verify: %v, want an unknown authority", err)
				}
			default:
				t.Fatalf("bad test: wantErr %T", want)
			}
		})
	}
}

// TestIssueFields: what an issued certificate carries besides its names.
func TestIssueFields(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	c := ca.Issue(t, "n1")
	leaf := c.Leaf
	if !bytes.Equal(leaf.Raw, c.Certificate[0]) {
		t.Fatal("Leaf is not the parsed Certificate[0]")
	}
	if len(c.Certificate) != 1 {
		t.Errorf("chain of %d certificates, want the leaf alone", len(c.Certificate))
	}
	if leaf.Subject.CommonName != "n1" || leaf.Issuer.CommonName != "ca" || leaf.IsCA {
		t.Errorf("subject %q issuer %q IsCA %v", leaf.Subject.CommonName, leaf.Issuer.CommonName, leaf.IsCA)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != testpki.NodeUsages[0] || leaf.ExtKeyUsage[1] != testpki.NodeUsages[1] {
		t.Errorf("extended key usages %v, want NodeUsages %v", leaf.ExtKeyUsage, testpki.NodeUsages)
	}
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(leaf.PublicKey) {
		t.Fatalf("private key %T does not match the certificate", c.PrivateKey)
	}
	if key.Equal(ca.Key) {
		t.Error("the leaf reuses the CA's key")
	}
	if leaf.SerialNumber.Cmp(ca.Issue(t, "n1").Leaf.SerialNumber) == 0 {
		t.Error("two certificates of one CA have the same serial number")
	}
	assertValidAroundNow(t, leaf)
}

// TestWrittenFilesLoad: WriteCA and WriteCert write PEM files that the
// standard loaders read back to the same certificate and key, readable by
// the owner only; CertPEM returns the same bytes.
func TestWrittenFilesLoad(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	c := ca.Issue(t, "n1")

	caFile := ca.WriteCA(t, dir, "ca.pem")
	if caFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("WriteCA returned %q", caFile)
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no PEM certificate", caFile)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("the leaf does not verify against the written CA: %v", err)
	}

	certFile, keyFile := testpki.WriteCert(t, dir, "n1", c)
	if certFile != filepath.Join(dir, "n1.pem") || keyFile != filepath.Join(dir, "n1-key.pem") {
		t.Errorf("WriteCert returned %q, %q", certFile, keyFile)
	}
	loaded, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if !bytes.Equal(loaded.Certificate[0], c.Certificate[0]) || !loaded.PrivateKey.(*ecdsa.PrivateKey).Equal(c.PrivateKey) {
		t.Error("the written pair loads to another certificate or key")
	}
	for _, f := range []string{caFile, certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	certPEM, keyPEM := testpki.CertPEM(t, c)
	for _, f := range []struct {
		file string
		pem  []byte
		typ  string
	}{{certFile, certPEM, "CERTIFICATE"}, {keyFile, keyPEM, "EC PRIVATE KEY"}} {
		onDisk, err := os.ReadFile(f.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, f.pem) {
			t.Errorf("CertPEM differs from %s", f.file)
		}
		if blk, rest := pem.Decode(f.pem); blk == nil || blk.Type != f.typ || len(bytes.TrimSpace(rest)) != 0 {
			t.Errorf("%s: want one %s block", f.file, f.typ)
		}
	}
}

// TestMutualTLSHandshake: two certificates of one CA complete a mutual TLS
// handshake over loopback, each side verifying the other; a client that
// trusts another CA is refused.
func TestMutualTLSHandshake(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "server")}, ClientCAs: ca.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	peers := make(chan string, 4)
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.Handshake() == nil {
				peers <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			_ = tc.Close()
		}
	}()

	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
		conn, err := d.DialContext(ctx, "tcp", lis.Addr().String())
		if err != nil {
			return nil, err
		}
		return conn.(*tls.Conn), nil
	}

	conn, err := dial(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "client")}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("handshake with a certificate of the same CA: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "server" {
		t.Errorf("client saw server %q", got)
	}
	// TLS 1.3: the server checks the client certificate after the client's
	// handshake ends; a read waits for its verdict.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Read(make([]byte, 1))
	_ = conn.Close()
	select {
	case got := <-peers:
		if got != "client" {
			t.Errorf("server saw client %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not complete the handshake")
	}

	other := testpki.NewCA(t, "ca")
	if conn, err := dial(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "client")}, RootCAs: other.Pool, MinVersion: tls.VersionTLS13}); err == nil {
		_ = conn.Close()
		t.Fatal("a client trusting another CA accepted the server")
	}
	// A client certificate of another CA: the server refuses it.
	conn, err = dial(&tls.Config{Certificates: []tls.Certificate{other.Issue(t, "intruder")}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		_ = conn.Close()
	}
	if err == nil {
		t.Fatal("the server accepted a client certificate of another CA")
	}
	select {
	case got := <-peers:
		t.Fatalf("the server completed a handshake with %q", got)
	default:
	}
}
