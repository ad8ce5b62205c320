package certreload

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factstr/factstr-go/internal/testpki"
)

// waitTimeout bounds every wait for the poll goroutine.
const waitTimeout = 10 * time.Second

// logSink is a slog.Handler that hands each record's message to a channel,
// so a test can wait for a failed reload to be logged.
type logSink struct{ ch chan string }

func (l logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l logSink) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	select {
	case l.ch <- msg:
	default:
	}
	return nil
}
func (l logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logSink) WithGroup(string) slog.Handler      { return l }

// files is a watched set of certificate, key and CA bundle files.
type files struct {
	t             *testing.T
	dir           string
	cert, key, ca string
	tick          atomic.Int64
	logs          chan string
	reloader      *Reloader
}

func newFiles(t *testing.T, cert tls.Certificate, cas ...*testpki.CA) *files {
	t.Helper()
	dir := t.TempDir()
	f := &files{t: t, dir: dir, cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key"),
		ca: filepath.Join(dir, "ca.crt"), logs: make(chan string, 100)}
	f.writeCert(cert)
	f.writeCA(cas...)
	r, err := Start(t.Context(), Options{CertFile: f.cert, KeyFile: f.key, CAFile: f.ca,
		Interval: 5 * time.Millisecond, Logger: slog.New(logSink{f.logs})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	f.reloader = r
	return f
}

// write replaces path atomically (as a Secret volume update does) and
// gives it a modification time no earlier write had.
func (f *files) write(path string, data []byte) {
	f.t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	mt := time.Unix(1_000_000+f.tick.Add(1), 0)
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.t.Fatal(err)
	}
}

func (f *files) writeCert(cert tls.Certificate) {
	c, k := testpki.CertPEM(f.t, cert)
	f.write(f.key, k)
	f.write(f.cert, c)
}

func (f *files) writeCA(cas ...*testpki.CA) {
	var b []byte
	for _, ca := range cas {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	}
	f.write(f.ca, b)
}

// waitReload waits until the generation passes gen.
func (f *files) waitReload(gen uint64) {
	f.t.Helper()
	deadline := time.After(waitTimeout)
	for f.reloader.Generation() <= gen {
		select {
		case <-f.reloader.Changed():
		case <-deadline:
			f.t.Fatalf("no reload after generation %d within %v", gen, waitTimeout)
		}
	}
}

// waitFailure waits for a failed reload to be logged and returns its line.
func (f *files) waitFailure() string {
	f.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case msg := <-f.logs:
			if strings.Contains(msg, "reload failed") {
				return msg
			}
		case <-deadline:
			f.t.Fatalf("no failed reload logged within %v", waitTimeout)
		}
	}
}

func serialOf(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }

func TestTLSReload(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	for name, tc := range map[string]struct {
		// change rewrites the files; good says whether it is a valid set
		change func(f *files, next tls.Certificate)
		good   bool
	}{
		"rotated cert and key": {func(f *files, next tls.Certificate) { f.writeCert(next) }, true},
		"rotated cert, key not yet": {func(f *files, next tls.Certificate) {
			c, _ := testpki.CertPEM(t, next)
			f.write(f.cert, c)
		}, false},
		"half-written cert": {func(f *files, next tls.Certificate) {
			c, k := testpki.CertPEM(t, next)
			f.write(f.key, k)
			f.write(f.cert, c[:len(c)/2])
		}, false},
		"empty key": {func(f *files, next tls.Certificate) { f.write(f.key, nil) }, false},
		"broken CA bundle": {func(f *files, next tls.Certificate) {
			f.write(f.ca, []byte("-----BEGIN CERTIFICATE-----\ngarbage"))
		}, false},
		"CA file removed": {func(f *files, next tls.Certificate) {
			if err := os.Remove(f.ca); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			first, next := ca.Issue(t, "first"), ca.Issue(t, "next")
			f := newFiles(t, first, ca)
			if got := serialOf(f.reloader.Certificate()); got != serialOf(&first) {
				t.Fatalf("serial %s, want %s", got, serialOf(&first))
			}
			gen := f.reloader.Generation()
			tc.change(f, next)
			if tc.good {
				f.waitReload(gen)
				if got := serialOf(f.reloader.Certificate()); got != serialOf(&next) {
					t.Fatalf("after rotation: serial %s, want %s", got, serialOf(&next))
				}
				return
			}
			msg := f.waitFailure()
			if !strings.Contains(msg, "serial="+serialOf(&first)) {
				t.Errorf("failure log does not name the certificate kept: %s", msg)
			}
			if got := serialOf(f.reloader.Certificate()); got != serialOf(&first) || f.reloader.Generation() != gen {
				t.Fatalf("after a bad write: serial %s generation %d, want the old %s at %d", got, f.reloader.Generation(), serialOf(&first), gen)
			}
			if f.reloader.CAPool() == nil {
				t.Fatal("CA pool lost")
			}
			// Fixing the files recovers.
			f.writeCert(next)
			f.writeCA(ca)
			f.waitReload(gen)
			if got := serialOf(f.reloader.Certificate()); got != serialOf(&next) {
				t.Fatalf("after repair: serial %s, want %s", got, serialOf(&next))
			}
		})
	}
}

// handshake runs a TLS handshake between server and client over a pipe
// and returns the client's error and the serial the client saw.
func handshake(t *testing.T, server, client *tls.Config) (serial string, err error) {
	t.Helper()
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(waitTimeout))
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		srvErr <- s.Handshake()
		s.Close()
	}()
	c := tls.Client(b, client)
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	err = c.Handshake()
	if err == nil {
		serial = c.ConnectionState().PeerCertificates[0].SerialNumber.String()
		// TLS 1.3: the server's verdict on the client certificate arrives
		// after the client's handshake is done.
		if serr := <-srvErr; serr != nil {
			return "", serr
		}
	}
	c.Close()
	return serial, err
}

// tcpPair returns the two ends of a loopback TCP connection (buffered,
// unlike net.Pipe, so neither end's handshake blocks on the other's reads).
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	client, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = lis.Accept(); err != nil {
		t.Fatal(err)
	}
	return server, client
}

func TestTLSCARotation(t *testing.T) {
	oldCA, newCA := testpki.NewCA(t, "old CA"), testpki.NewCA(t, "new CA")
	for name, side := range map[string]string{
		"server accepts a client of the new CA": "server",
		"client accepts a server of the new CA": "client",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFiles(t, oldCA.Issue(t, "me"), oldCA)
			peer := newCA.Issue(t, "peer")
			var server, client *tls.Config
			if side == "server" {
				server = f.reloader.ServerConfig()
				client = &tls.Config{Certificates: []tls.Certificate{peer}, RootCAs: oldCA.Pool, ServerName: "localhost"}
			} else {
				server = &tls.Config{Certificates: []tls.Certificate{peer}}
				client = f.reloader.ClientConfig("127.0.0.1")
			}
			if _, err := handshake(t, server, client); err == nil {
				t.Fatal("a peer of a CA not in the bundle was accepted")
			}
			gen := f.reloader.Generation()
			f.writeCA(oldCA, newCA)
			f.waitReload(gen)
			if _, err := handshake(t, server, client); err != nil {
				t.Fatalf("after the bundle gained the new CA: %v", err)
			}
		})
	}
}

func TestTLSClientVerifiesHostName(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	f := newFiles(t, ca.Issue(t, "me"), ca)
	server := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "srv")}}
	for name, tc := range map[string]struct {
		host string
		ok   bool
	}{"IP SAN": {"127.0.0.1", true}, "DNS SAN": {"localhost", true}, "other name": {"example.com", false}, "other IP": {"10.1.2.3", false}} {
		_, err := handshake(t, server, f.reloader.ClientConfig(tc.host))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tc.ok)
		}
	}
}

func TestTLSCloseStopsPolling(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	f := newFiles(t, ca.Issue(t, "me"), ca)
	if err := f.reloader.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.reloader.done:
	default:
		t.Fatal("poll goroutine still running after Close")
	}
	_ = f.reloader.Close() // idempotent
	// Canceling the context stops it too.
	ctx, cancel := context.WithCancel(t.Context())
	r, err := Start(ctx, Options{CertFile: f.cert, KeyFile: f.key, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-r.done:
	case <-time.After(waitTimeout):
		t.Fatal("poll goroutine still running after the context ended")
	}
}

func TestTLSStartFails(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert, key := testpki.WriteCert(t, dir, "n", ca.Issue(t, "n"))
	other, _ := testpki.WriteCert(t, dir, "o", ca.Issue(t, "o"))
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"no key":       {CertFile: cert},
		"mismatch":     {CertFile: other, KeyFile: key},
		"missing file": {CertFile: cert, KeyFile: filepath.Join(dir, "none")},
		"bad CA":       {CertFile: cert, KeyFile: key, CAFile: bad},
	} {
		if r, err := Start(t.Context(), o); err == nil {
			r.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

// TestTLSEndToEndRotation runs a real TLS server and client from reloaders
// over TCP, rotates the server's certificate files and checks that a new
// connection gets the new certificate without restarting either side.
func TestTLSEndToEndRotation(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	first, second := ca.Issue(t, "server-1"), ca.Issue(t, "server-2")
	srv := newFiles(t, first, ca)
	cli := newFiles(t, ca.Issue(t, "client"), ca)

	lis, err := tls.Listen("tcp", "127.0.0.1:0", srv.reloader.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Echo the client's certificate serial once verified.
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				_, _ = c.Write([]byte(tc.ConnectionState().PeerCertificates[0].SerialNumber.String() + "\n"))
			}()
		}
	}()
	dial := func() (serverSerial, echoed string) {
		t.Helper()
		d := tls.Dialer{Config: cli.reloader.ClientConfig("127.0.0.1")}
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var buf [64]byte
		n, err := c.Read(buf[:])
		if err != nil {
			t.Fatal(err)
		}
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String(), strings.TrimSpace(string(buf[:n]))
	}
	for _, tc := range []struct {
		name   string
		rotate func()
		want   *tls.Certificate
	}{
		{"before rotation", func() {}, &first},
		{"after rotation", func() {
			gen := srv.reloader.Generation()
			srv.writeCert(second)
			srv.waitReload(gen)
		}, &second},
	} {
		tc.rotate()
		got, echoed := dial()
		if got != serialOf(tc.want) {
			t.Errorf("%s: server serial %s, want %s", tc.name, got, serialOf(tc.want))
		}
		if echoed != serialOf(cli.reloader.Certificate()) {
			t.Errorf("%s: server saw client serial %s, want %s", tc.name, echoed, serialOf(cli.reloader.Certificate()))
		}
	}

	// gRPC peer dials verify the same way, from the current material.
	raw, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	conn, _, err := cli.reloader.GRPCClientCredentials().ClientHandshake(ctx, lis.Addr().String(), raw)
	if err == nil {
		// Our test server does not speak ALPN h2; a handshake error about
		// that is fine, a verification error is not.
		got := conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().PeerCertificates[0].SerialNumber.String()
		if got != serialOf(&second) {
			t.Errorf("gRPC credentials: serial %s, want %s", got, serialOf(&second))
		}
	} else if strings.Contains(err.Error(), "certificate") {
		t.Errorf("gRPC credentials: %v", err)
	}
}
