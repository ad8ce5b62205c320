package raftlog

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/internal/testpki"
)

// nodeTLS is the Raft TLS config of a node holding cert, trusting ca.
func nodeTLS(ca *testpki.CA, cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool}
}

// TestThreeNodeTLSPartitionLeader is TestThreeNodePartitionLeader over
// mutual TLS: election, replication, a partition and healing.
func TestThreeNodeTLSPartitionLeader(t *testing.T) {
	ca := testpki.NewCA(t, "raft test CA")
	var mu sync.Mutex
	var logs bytes.Buffer
	nodes := startCluster(t, 3, func(c *Config) {
		c.TLS = nodeTLS(ca, ca.Issue(t, c.NodeID))
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	for _, nd := range nodes {
		if nd.s.Network.serverTLS == nil || nd.s.Network.clientTLS == nil {
			t.Fatalf("%s: stream layer is not TLS", nd.id)
		}
	}
	testPartitionLeader(t, nodes)
	mu.Lock()
	defer mu.Unlock()
	// A handshake that the partition (or a closing dialer) cuts off is
	// logged as a refusal too; what must never appear is a certificate of
	// this CA refused.
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "refused Raft connection") {
			continue
		}
		if strings.Contains(line, "error=EOF") || strings.Contains(line, "closed network connection") ||
			strings.Contains(line, "connection reset") || strings.Contains(line, "i/o timeout") || strings.Contains(line, "broken pipe") {
			continue
		}
		t.Errorf("a good peer was refused:\n%s", line)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestTLSRefusesStrangers(t *testing.T) {
	ca := testpki.NewCA(t, "raft test CA")
	other := testpki.NewCA(t, "another CA")
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, nil))
	a, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLS(nodeTLS(ca, ca.Issue(t, "a"))), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := a.Addr().String()

	// acceptOne accepts one connection and reads from it as the transport
	// would; a refused peer reads as io.EOF.
	acceptOne := func() <-chan error {
		ch := make(chan error, 1)
		go func() {
			c, err := a.Accept()
			if err != nil {
				ch <- err
				return
			}
			defer c.Close()
			var b [1]byte
			if _, err = c.Read(b[:]); err == nil {
				_, err = c.Write(b[:])
			}
			ch <- err
		}()
		return ch
	}
	resetLog := func() {
		a.refusals.mu.Lock()
		a.refusals.last = time.Time{}
		a.refusals.mu.Unlock()
		mu.Lock()
		logs.Reset()
		mu.Unlock()
	}
	wantRefusal := func(name string, dial func() (net.Conn, error), wantLog string) {
		t.Helper()
		resetLog()
		accepted := acceptOne()
		c, err := dial()
		if err == nil {
			// TLS 1.3: the client finishes its handshake before the server
			// has checked the client's certificate; the refusal arrives on
			// the first read.
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			// Enough bytes for a TLS record header, as a plain Raft RPC
			// (type byte, then msgpack) would be.
			if _, err = c.Write([]byte{0, 0x85, 1, 2, 3, 4, 5, 6}); err == nil {
				var b [1]byte
				_, err = c.Read(b[:])
			}
			c.Close()
		}
		if err == nil {
			t.Errorf("%s: connection worked", name)
		}
		if err := <-accepted; !errors.Is(err, io.EOF) {
			t.Errorf("%s: accept side read %v, want io.EOF", name, err)
		}
		mu.Lock()
		got := logs.String()
		mu.Unlock()
		if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "refused Raft connection") ||
			!strings.Contains(got, "remote_addr=127.0.0.1:") || !strings.Contains(got, wantLog) {
			t.Errorf("%s: log %q, want a warning with the remote address and %q", name, got, wantLog)
		}
		t.Logf("%s: dialer saw %v; node logged %s", name, err, got)
	}
	tlsDial := func(cert *tls.Certificate) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		}
	}
	stranger := other.Issue(t, "stranger")
	clientOnly := ca.Issue(t, "ops", x509.ExtKeyUsageClientAuth)
	wantRefusal("no client certificate", tlsDial(nil), "certificate")
	wantRefusal("certificate of another CA", tlsDial(&stranger), "unknown authority")
	wantRefusal("client-only certificate of the CA", tlsDial(&clientOnly), "incompatible key usage")
	wantRefusal("plain TCP", func() (net.Conn, error) { return net.Dial("tcp", addr) }, "does not speak TLS")

	// A node with a certificate of another CA is refused, and refuses.
	resetLog()
	b, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLS(nodeTLS(other, stranger)), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	accepted := acceptOne()
	if c, err := b.Dial(raft.ServerAddress(addr), 5*time.Second); err == nil {
		c.Close()
		t.Error("a node of another CA dialed a successfully")
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("dial from another CA: %v, want an unknown authority error", err)
	}
	if err := <-accepted; !errors.Is(err, io.EOF) {
		t.Errorf("accept side read %v, want io.EOF", err)
	}

	// Rate limit: a second refusal within the interval is counted, not
	// logged.
	resetLog()
	for range 2 {
		accepted := acceptOne()
		if c, err := net.Dial("tcp", addr); err == nil {
			_, _ = c.Write([]byte("plain"))
			c.Close()
		}
		<-accepted
	}
	mu.Lock()
	n := strings.Count(logs.String(), "refused Raft connection")
	mu.Unlock()
	if n != 1 {
		t.Errorf("logged %d refusals within the rate-limit interval, want 1", n)
	}
}

func TestTLSPlainMismatch(t *testing.T) {
	ca := testpki.NewCA(t, "raft test CA")
	tlsLayer, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLS(nodeTLS(ca, ca.Issue(t, "tls"))), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer tlsLayer.Close()
	plain, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	// The plain node reads the TLS hello as garbage and drops it; the TLS
	// dialer's handshake fails.
	go func() {
		if c, err := plain.Accept(); err == nil {
			var b [1]byte
			_, _ = c.Read(b[:])
			c.Close()
		}
	}()
	if c, err := tlsLayer.Dial(raft.ServerAddress(plain.Addr().String()), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("a TLS node completed a handshake with a plain node")
	} else {
		t.Logf("TLS node dialing a plain node: %v", err)
	}
}

func TestTLSConfigValidate(t *testing.T) {
	ca := testpki.NewCA(t, "raft test CA")
	cert := ca.Issue(t, "n")
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	getClient := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	roots := func() *x509.CertPool { return ca.Pool }
	for name, tc := range map[string]struct {
		cfg   *tls.Config
		roots func() *x509.CertPool
		want  string
	}{
		"good":                    {cfg: nodeTLS(ca, cert)},
		"dynamic":                 {cfg: &tls.Config{GetCertificate: getCert, GetClientCertificate: getClient}, roots: roots},
		"dynamic cert, static CA": {cfg: &tls.Config{GetCertificate: getCert, GetClientCertificate: getClient, RootCAs: ca.Pool}},
		"no dial cert":            {&tls.Config{GetCertificate: getCert}, roots, "Certificates"},
		"two CA sources":          {nodeTLS(ca, cert), roots, "set one"},
		"no cert":                 {&tls.Config{RootCAs: ca.Pool}, nil, "Certificates"},
		"no CA":                   {&tls.Config{Certificates: []tls.Certificate{cert}}, nil, "RootCAs"},
		"skip verify":             {&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool, InsecureSkipVerify: true}, nil, "InsecureSkipVerify"},
		"TLS 1.2 max":             {&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool, MaxVersion: tls.VersionTLS12}, nil, "TLS 1.3"},
	} {
		c := validTestConfig()
		c.TLS, c.TLSRootCAs = tc.cfg, tc.roots
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "TLS" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want a TLS error about %s", name, err, tc.want)
		}
		if _, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLSRootCAs(tc.cfg, tc.roots)); err == nil {
			t.Errorf("%s: WithTLS accepted it", name)
		}
	}
}

// TestTLSDynamicRootCAs checks that a layer with a CA pool function
// verifies each handshake against the pool of the moment, on accept and
// on dial, by chain only.
func TestTLSDynamicRootCAs(t *testing.T) {
	oldCA, newCA := testpki.NewCA(t, "old CA"), testpki.NewCA(t, "new CA")
	both := x509.NewCertPool()
	both.AddCert(oldCA.Cert)
	both.AddCert(newCA.Cert)
	var pool atomic.Pointer[x509.CertPool]
	pool.Store(oldCA.Pool)
	mine := oldCA.Issue(t, "dynamic")
	dyn := &tls.Config{
		GetCertificate:       func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &mine, nil },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mine, nil },
	}
	layer, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLSRootCAs(dyn, pool.Load), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	// The peer trusts both CAs and holds a certificate of the new one.
	peer, err := NewPartitionableStreamLayer(t.Context(), "127.0.0.1:0", "", WithTLS(&tls.Config{Certificates: []tls.Certificate{newCA.Issue(t, "peer")}, RootCAs: both}), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	accept := func(l *PartitionableStreamLayer) {
		go func() {
			if c, err := l.Accept(); err == nil {
				var b [1]byte
				_, _ = c.Read(b[:]) // runs the server handshake
				c.Close()
			}
		}()
	}
	dial := func() error {
		accept(peer)
		c, err := layer.Dial(raft.ServerAddress(peer.Addr().String()), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err == nil {
		t.Fatal("dialed a peer whose CA is not in the current pool")
	}
	pool.Store(both)
	if err := dial(); err != nil {
		t.Fatalf("after the pool gained the peer's CA: %v", err)
	}
}
