package clusterkey

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultLifetime is how long a node certificate is valid. Short enough
// that a copied node key (without the cluster key) stops working within
// days, long enough that a node whose renewal is late keeps running.
const DefaultLifetime = 7 * 24 * time.Hour

// NodeURI is the URI SAN naming node id in its certificate.
func NodeURI(nodeID string) (*url.URL, error) {
	return url.Parse("factstr://node/" + url.PathEscape(nodeID))
}

// Issuer holds this node's current certificate and renews it when a
// quarter of its lifetime is left. Its methods are safe for concurrent use.
type Issuer struct {
	ca       *CA
	nodeID   string
	hosts    []string
	lifetime time.Duration
	now      func() time.Time
	logger   *slog.Logger
	cur      atomic.Pointer[tls.Certificate]
}

// IssuerOptions configure NewIssuer.
type IssuerOptions struct {
	NodeID string
	// Hosts become SANs of the certificate (see CA.Issue).
	Hosts []string
	// Lifetime of each certificate; zero means DefaultLifetime.
	Lifetime time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// NewIssuer issues the first certificate.
func NewIssuer(ca *CA, o IssuerOptions) (*Issuer, error) {
	if o.NodeID == "" {
		return nil, errors.New("clusterkey: node id is empty")
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	is := &Issuer{ca: ca, nodeID: o.NodeID, hosts: o.Hosts, lifetime: o.Lifetime, now: o.Now, logger: o.Logger}
	if err := is.renew(); err != nil {
		return nil, err
	}
	return is, nil
}

// CA returns the cluster CA.
func (is *Issuer) CA() *CA { return is.ca }

func (is *Issuer) renew() error {
	c, err := is.ca.Issue(is.nodeID, is.hosts, is.now(), is.lifetime)
	if err != nil {
		return err
	}
	is.cur.Store(c)
	return nil
}

// Run renews the certificate until ctx is done. A failed renewal is logged
// and retried a minute later; the current certificate stays in use.
func (is *Issuer) Run(ctx context.Context) {
	for {
		left := time.Until(is.Certificate().Leaf.NotAfter) - is.lifetime/4
		if left < time.Minute {
			left = time.Minute
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := is.renew(); err != nil {
			is.logger.Error("renew the cluster node certificate", "error", err.Error())
			continue
		}
		is.logger.Info("cluster node certificate renewed", "not_after", is.Certificate().Leaf.NotAfter)
	}
}

// Certificate returns the current node certificate (Leaf set).
func (is *Issuer) Certificate() *tls.Certificate { return is.cur.Load() }

// GetCertificate is a tls.Config.GetCertificate.
func (is *Issuer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return is.Certificate(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate.
func (is *Issuer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return is.Certificate(), nil
}

// PeerDialConfig returns the client side of a node-to-node gRPC
// connection: it presents this node's certificate, asks for the peer's
// cluster certificate by PeerServerName and accepts only a node
// certificate of this cluster CA. The dialed host is not checked: peers
// are reached by whatever address they advertise (as on the Raft port),
// and the CA is the trust boundary.
func (is *Issuer) PeerDialConfig() *tls.Config {
	return &tls.Config{
		ServerName:           PeerServerName,
		GetClientCertificate: is.GetClientCertificate,
		MinVersion:           tls.VersionTLS13,
		// The chain is checked in VerifyConnection against the cluster
		// CA alone (never the system roots).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := is.ca.Verify(cs.PeerCertificates, is.now()); err != nil {
				return fmt.Errorf("peer gRPC server: %w", err)
			}
			return nil
		},
	}
}

// PeerCredentials returns gRPC transport credentials for dialing peers
// (PeerDialConfig).
func (is *Issuer) PeerCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(is.PeerDialConfig())
}
