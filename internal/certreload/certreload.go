package certreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultInterval is how often the files are checked when
// Options.Interval is zero.
const DefaultInterval = 5 * time.Second

// Options says which files to load and how to watch them.
type Options struct {
	// CertFile and KeyFile hold the PEM certificate (chain) and its key.
	// Both are required.
	CertFile, KeyFile string
	// CAFile, if set, holds the PEM CA bundle that peers' certificates must
	// chain to.
	CAFile string
	// Interval is how often the files' modification times and sizes are
	// checked; zero means DefaultInterval.
	Interval time.Duration
	// Logger receives reloads and failed reloads; nil means slog.Default().
	Logger *slog.Logger
}

// material is one consistent set of what the files held.
type material struct {
	cert *tls.Certificate
	pool *x509.CertPool // nil without CAFile
}

// stamp identifies a version of a file by modification time and size.
type stamp struct {
	mod  time.Time
	size int64
	err  string
}

// Reloader holds the current certificate and CA pool and keeps them up to
// date with the files. Its methods are safe for concurrent use.
type Reloader struct {
	opts   Options
	logger *slog.Logger

	cur atomic.Pointer[material]
	gen atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed on the next successful reload

	// owned by the poll goroutine (and Start before it runs)
	stamps []stamp

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Start loads the files and starts watching them until ctx is done or
// Close is called. It fails if the files cannot be loaded now.
func Start(ctx context.Context, opts Options) (*Reloader, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("certreload: CertFile and KeyFile are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	r := &Reloader{opts: opts, logger: opts.Logger, changed: make(chan struct{}), done: make(chan struct{})}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	r.stamps = r.stat()
	m, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(m)
	r.gen.Store(1)
	ctx, r.cancel = context.WithCancel(ctx)
	go r.poll(ctx)
	return r, nil
}

// Close stops watching the files and waits for the poll goroutine to
// exit. The last material stays available.
func (r *Reloader) Close() error {
	r.closeOnce.Do(r.cancel)
	<-r.done
	return nil
}

// Generation counts successful loads: 1 after Start, one more for each
// reload.
func (r *Reloader) Generation() uint64 { return r.gen.Load() }

// Changed returns a channel that is closed at the next successful reload.
func (r *Reloader) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Certificate returns the current certificate; its Leaf is set.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// CAPool returns the current CA pool, or nil without Options.CAFile. The
// pool must not be modified.
func (r *Reloader) CAPool() *x509.CertPool { return r.cur.Load().pool }

// GetCertificate is a tls.Config.GetCertificate returning the current
// certificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate returning the
// current certificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// ServerConfig returns a server config presenting the current certificate.
// With a CA bundle it requires a client certificate that chains to the
// bundle current at the handshake (mutual TLS).
func (r *Reloader) ServerConfig() *tls.Config {
	base := &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
	if r.opts.CAFile == "" {
		return base
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
	base.ClientCAs = r.CAPool() // overridden per handshake
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = r.CAPool()
		return c, nil
	}
	return base
}

// ClientConfig returns a dialing config presenting the current certificate
// when asked for one. With a CA bundle it verifies the server's chain
// against the bundle current at the handshake and its certificate against
// serverName (a DNS name or IP address), as crypto/tls does with RootCAs.
// Without a CA bundle the system roots verify the server as usual.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	c := &tls.Config{GetClientCertificate: r.GetClientCertificate, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if r.opts.CAFile == "" {
		return c
	}
	// RootCAs is fixed for the config's life; verify in VerifyConnection
	// instead, with the pool of the moment.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyServer(r.CAPool(), serverName, cs.PeerCertificates)
	}
	return c
}

func verifyServer(roots *x509.CertPool, name string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("certreload: server presented no certificate")
	}
	if name == "" {
		return errors.New("certreload: no server name to verify the certificate against")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return nil
}

// GRPCClientCredentials returns gRPC transport credentials for dialing
// that build a tls.Config per connection from the current certificate and
// CA pool (as RootCAs; the system roots without a CA bundle), so the
// server is verified exactly as credentials.NewTLS would, host name
// included.
func (r *Reloader) GRPCClientCredentials() credentials.TransportCredentials {
	return &grpcCreds{TransportCredentials: credentials.NewTLS(r.dialConfig()), r: r}
}

func (r *Reloader) dialConfig() *tls.Config {
	return &tls.Config{GetClientCertificate: r.GetClientCertificate, RootCAs: r.CAPool(), MinVersion: tls.VersionTLS12}
}

type grpcCreds struct {
	credentials.TransportCredentials
	r *Reloader
}

func (g *grpcCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(g.r.dialConfig()).ClientHandshake(ctx, authority, raw)
}

func (g *grpcCreds) Clone() credentials.TransportCredentials {
	return &grpcCreds{TransportCredentials: g.TransportCredentials.Clone(), r: g.r}
}

// load reads the three files into one material.
func (r *Reloader) load() (*material, error) {
	cert, err := tls.LoadX509KeyPair(r.opts.CertFile, r.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certreload: load %s and %s: %w", r.opts.CertFile, r.opts.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certreload: parse %s: %w", r.opts.CertFile, err)
		}
	}
	m := &material{cert: &cert}
	if r.opts.CAFile != "" {
		pem, err := os.ReadFile(r.opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("certreload: read CA bundle: %w", err)
		}
		m.pool = x509.NewCertPool()
		if !m.pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("certreload: CA bundle %s holds no PEM certificate", r.opts.CAFile)
		}
	}
	return m, nil
}

// stat stamps the watched files (following symlinks).
func (r *Reloader) stat() []stamp {
	files := []string{r.opts.CertFile, r.opts.KeyFile, r.opts.CAFile}
	out := make([]stamp, 0, len(files))
	for _, f := range files {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			out = append(out, stamp{err: err.Error()})
			continue
		}
		out = append(out, stamp{mod: fi.ModTime(), size: fi.Size()})
	}
	return out
}

func (r *Reloader) poll(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.check()
	}
}

// check reloads if any file changed since the last attempt. A failed
// attempt is not retried until a file changes again.
func (r *Reloader) check() {
	now := r.stat()
	if sameStamps(now, r.stamps) {
		return
	}
	r.stamps = now
	m, err := r.load()
	if err != nil {
		old := r.Certificate().Leaf
		r.logger.Error("TLS certificate reload failed; still using the previous certificate and CA bundle",
			"error", err.Error(), "serial", old.SerialNumber.String(), "not_after", old.NotAfter)
		return
	}
	r.cur.Store(m)
	r.mu.Lock()
	r.gen.Add(1)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	leaf := m.cert.Leaf
	r.logger.Info("TLS certificate reloaded", "cert", r.opts.CertFile, "ca", r.opts.CAFile,
		"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size || a[i].err != b[i].err {
			return false
		}
	}
	return true
}
