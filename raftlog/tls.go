package raftlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Raft over mutual TLS.
//
// One *tls.Config (Config.TLS) serves both directions, rather than a server
// and a client config: a node is server and client of the same peers with
// the same identity, and two configs could disagree in a way that only
// shows in one direction (A reaches B, B cannot reach A), which in Raft
// looks like a flapping leader rather than a TLS error. From the one config
// the layer derives its server and client sides (peerTLSConfigs).
//
// Peers are verified by chain only, not by host name: a peer must present
// a certificate that chains to RootCAs and is valid for both server and
// client auth (a node certificate, which the gRPC peer calls need anyway),
// on accept and on dial alike. The dialed host is not checked against the
// certificate's SANs. Raft addresses are whatever a node advertises: a pod
// IP, a pod DNS name under any cluster domain, or a proxy in front of the
// port (--raft-advertise-addr), and a Raft configuration keeps an address
// for the life of the server, so a name check would turn a certificate
// that lacks one of those names into a cluster that cannot elect a leader.
// A check only "when the host is among the SANs" would be no check at all:
// an attacker holding any certificate from the CA just leaves the name out.
// So the CA is the trust boundary: every certificate it signs for server
// and client auth can speak Raft. Consul's verify_server_hostname=false
// default makes the same trade; etcd checks SANs.

// tlsHandshakeTimeout bounds an inbound handshake (outbound ones are
// bounded by the transport's dial timeout).
const tlsHandshakeTimeout = 10 * time.Second

// refusalLogInterval is the least time between two logged refusals; the
// ones in between are counted in the next.
const refusalLogInterval = 5 * time.Second

// Certificates that change while the node runs (a Secret rotated by
// cert-manager, reloaded by internal/certreload) fit the same model: the
// config may carry GetCertificate and GetClientCertificate instead of
// Certificates, and the CA pool may come from a function (Config.TLSRootCAs,
// WithTLSRootCAs) called on every handshake instead of the static RootCAs.
// The verification is the same chain-only check against whatever pool the
// function returns at that moment.

// checkTLS reports why cfg cannot be used for Raft mutual TLS, given the
// optional dynamic CA source roots. Config.Validate and WithTLS both call it.
func checkTLS(cfg *tls.Config, roots func() *x509.CertPool) error {
	var errs []string
	if len(cfg.Certificates) == 0 && (cfg.GetCertificate == nil || cfg.GetClientCertificate == nil) {
		errs = append(errs, "has no Certificates (nor both GetCertificate and GetClientCertificate); set this node's certificate and key (they are presented on accept and on dial)")
	}
	switch {
	case cfg.RootCAs == nil && roots == nil:
		errs = append(errs, "has no RootCAs; set the CA pool that signs every node's certificate (peers are verified against it in both directions)")
	case cfg.RootCAs != nil && roots != nil:
		errs = append(errs, "sets RootCAs and a CA pool function (TLSRootCAs); set one")
	}
	if cfg.InsecureSkipVerify {
		errs = append(errs, "sets InsecureSkipVerify; Raft peers are always verified against RootCAs, leave it false")
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS13 {
		errs = append(errs, "MaxVersion is below TLS 1.3, which Raft traffic requires; leave it 0")
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// peerTLSConfigs derives the accept and dial sides from cfg (checked by
// checkTLS). Both verify the peer with verifyPeer, which checks the chain
// but no host name, against roots() if roots is not nil (called on every
// handshake) and cfg.RootCAs otherwise.
func peerTLSConfigs(cfg *tls.Config, roots func() *x509.CertPool) (server, client *tls.Config) {
	if roots == nil {
		static := cfg.RootCAs
		roots = func() *x509.CertPool { return static }
	}
	verify := func(cs tls.ConnectionState) error {
		pool := roots()
		if pool == nil {
			return errors.New("raft peer certificate: no CA pool to verify it against")
		}
		if err := verifyPeer(pool, cfg.Time, cs.PeerCertificates); err != nil {
			return err
		}
		if cfg.VerifyConnection != nil {
			return cfg.VerifyConnection(cs)
		}
		return nil
	}
	base := cfg.Clone()
	base.MinVersion = tls.VersionTLS13 // both ends are this code
	base.VerifyConnection = verify

	server = base.Clone()
	// RequireAnyClientCert: insist on a certificate, and let verify check
	// it (against RootCAs, with both key usages) instead of crypto/tls
	// (against ClientCAs, client auth only).
	server.ClientAuth = tls.RequireAnyClientCert
	server.ClientCAs = nil

	client = base.Clone()
	// crypto/tls would also check the host name; verify does the chain.
	client.InsecureSkipVerify = true
	return server, client
}

// verifyPeer checks that certs (leaf first) chain to roots and that the
// leaf is valid for server auth and for client auth.
func verifyPeer(roots *x509.CertPool, now func() time.Time, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("raft peer presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
	if now != nil {
		opts.CurrentTime = now()
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	// KeyUsages accepts a chain valid for any one of the listed usages;
	// we need both, so check twice.
	for _, ku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		opts.KeyUsages = []x509.ExtKeyUsage{ku}
		if _, err := certs[0].Verify(opts); err != nil {
			return fmt.Errorf("raft peer certificate %q: %w", certs[0].Subject.String(), err)
		}
	}
	return nil
}

// clientHandshake runs the TLS handshake of a dialed connection, closing
// it on failure.
func (c *trackedConn) clientHandshake(deadline time.Time) error {
	_ = c.raw.SetDeadline(deadline)
	err := c.tls.HandshakeContext(context.Background())
	if err == nil {
		err = c.raw.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		hint := notTLSHint(err)
		if hint == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			hint = " (the peer hung up on the TLS hello: is it started without the cluster key or --raft-tls? every node of a cluster must agree)"
		}
		return fmt.Errorf("TLS handshake: %w%s", err, hint)
	}
	return nil
}

// serverHandshake runs the TLS handshake of an accepted connection once, on
// its first Read or Write. A failed handshake closes the connection and is
// logged (rate-limited) as a refused peer. It is a no-op for plain TCP and
// outbound connections.
func (c *trackedConn) serverHandshake() error {
	if c.tls == nil || !c.inbound {
		return nil
	}
	c.hsOnce.Do(func() {
		_ = c.raw.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
		err := c.tls.HandshakeContext(context.Background())
		if err == nil {
			err = c.raw.SetDeadline(time.Time{})
		}
		if err == nil {
			return
		}
		c.hsErr = err
		cut := c.cut.Load()
		_ = c.Close()
		if !cut {
			c.s.refusals.log(c.s.logger, c.raw.RemoteAddr(), err)
		}
	})
	return c.hsErr
}

// notTLSHint explains the handshake error a peer without TLS causes.
func notTLSHint(err error) string {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return " (the peer does not speak TLS: is it started without the cluster key or --raft-tls? every node of a cluster must agree)"
	}
	return ""
}

// refusalLog rate-limits the warnings for refused inbound connections: a
// misconfigured peer redials every few milliseconds.
type refusalLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *refusalLog) log(l *slog.Logger, remote net.Addr, err error) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogInterval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.last = now
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	l.Warn("refused Raft connection: TLS handshake failed; the peer must use Raft TLS (factstr-node --cluster-key with the same key, or --raft-tls) with a node certificate signed by this node's CA",
		"remote_addr", remote.String(), "error", err.Error()+notTLSHint(err),
		"refusals_not_logged", suppressed)
}
