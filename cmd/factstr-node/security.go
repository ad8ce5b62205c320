package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/factstr/factstr-go/internal/certreload"
	"github.com/factstr/factstr-go/internal/clusterkey"
	"github.com/factstr/factstr-go/internal/server"
)

// errExposed is returned when a node would listen beyond loopback without
// authentication; its message is the one line the operator sees.
var errExposed = errors.New("refusing to start")

// isLoopback reports whether a bind address host:port stays on this
// machine. A host name other than localhost, an empty host and a wildcard
// count as exposed: what they bind is not known here, so fail closed.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses a node that binds a non-loopback address without
// authenticated cluster traffic (--cluster-key, or the full --tls-* set
// with --raft-tls and --gossip-key) or with unauthenticated clients,
// unless --insecure. The error names the first missing flag.
func checkExposure(f *serveFlags, haveTokens bool) error {
	if f.insecure {
		return nil
	}
	// The HTTP port carries client calls only: it needs client
	// authentication, like the gRPC port, but no cluster key.
	if f.httpAddr != "" && !isLoopback(f.httpAddr) && !haveTokens && f.tlsCA == "" {
		return fmt.Errorf("%w: --http-addr %s is not a loopback address and clients are not authenticated: --token or --auth-file is missing (or --tls-ca for client certificates); or pass --insecure", errExposed, f.httpAddr)
	}
	var exposed string
	for _, a := range []struct{ flag, addr string }{
		{"--grpc-addr", f.grpcAddr}, {"--raft-addr", f.raftAddr}, {"--gossip-addr", f.gossipAddr},
	} {
		if !isLoopback(a.addr) {
			exposed = fmt.Sprintf("%s %s", a.flag, a.addr)
			break
		}
	}
	if exposed == "" {
		return nil
	}
	if f.clusterKey == "" {
		var missing []string
		for _, m := range []struct {
			flag string
			set  bool
		}{{"--tls-cert", f.tlsCert != ""}, {"--tls-key", f.tlsKey != ""}, {"--tls-ca", f.tlsCA != ""},
			{"--raft-tls", f.raftTLS}, {"--gossip-key", f.gossipKey != ""}} {
			if !m.set {
				missing = append(missing, m.flag)
			}
		}
		if len(missing) == 5 {
			return fmt.Errorf("%w: %s is not a loopback address and --cluster-key is missing (FACTSTR_CLUSTER_KEY; make one with 'factstr-node keygen'); or pass --insecure to run unauthenticated", errExposed, exposed)
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %s is not a loopback address and %s is missing (or use --cluster-key); or pass --insecure to run unauthenticated", errExposed, exposed, strings.Join(missing, ", "))
		}
	}
	if !isLoopback(f.grpcAddr) && !haveTokens && f.tlsCA == "" {
		return fmt.Errorf("%w: --grpc-addr %s is not a loopback address and clients are not authenticated: --token or --auth-file is missing (or --tls-ca for client certificates); or pass --insecure", errExposed, f.grpcAddr)
	}
	return nil
}

// clientTokens merges --token (one admin token) and --auth-file.
func clientTokens(token, authFile string) ([]server.Credential, error) {
	var out []server.Credential
	if authFile != "" {
		creds, err := server.LoadAuthFile(authFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-file: %w", err)
		}
		out = creds
	}
	if token != "" {
		if slices.ContainsFunc(out, func(c server.Credential) bool { return c.Token == token }) {
			return nil, errors.New("--token is also in --auth-file; give each token once")
		}
		out = append(out, server.Credential{Name: "--token", Token: token, Role: "admin"})
	}
	return out, nil
}

// nodeIdentity is what --cluster-key gives a node: its certificate from the
// cluster CA (renewed while ctx lives) and the gossip key.
type nodeIdentity struct {
	*clusterkey.Issuer
	gossipKey []byte
}

// clusterIdentity derives the node identity from --cluster-key; nil
// without one.
func clusterIdentity(ctx context.Context, f *serveFlags, logger *slog.Logger) (*nodeIdentity, error) {
	if f.clusterKey == "" {
		return nil, nil
	}
	if f.raftTLS {
		return nil, errors.New("--raft-tls with --cluster-key: Raft already runs mutual TLS with the cluster certificates; drop --raft-tls")
	}
	if f.gossipKey != "" {
		return nil, errors.New("--gossip-key with --cluster-key: the gossip key is derived from the cluster key; drop --gossip-key")
	}
	key, err := clusterkey.Parse(f.clusterKey)
	if err != nil {
		return nil, fmt.Errorf("--cluster-key: %w", err)
	}
	ca, err := key.CA()
	if err != nil {
		return nil, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(f.grpcAddr); err == nil {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			// A wildcard bind answers on every interface address (a pod
			// IP, a container IP): clients dialing one must find it named.
			hosts = append(hosts, interfaceIPs()...)
		} else {
			hosts = append(hosts, h)
		}
	}
	if f.advertise != "" {
		hosts = append(hosts, f.advertise)
	}
	hosts = append(hosts, f.tlsSANs...)
	is, err := clusterkey.NewIssuer(ca, clusterkey.IssuerOptions{NodeID: f.nodeID, Hosts: hosts,
		Logger: logger.With("logger", "clusterkey")})
	if err != nil {
		return nil, err
	}
	go is.Run(ctx)
	return &nodeIdentity{Issuer: is, gossipKey: key.GossipKey()}, nil
}

// serverConfig is the gRPC port's TLS with a cluster key. Peers ask for
// clusterkey.PeerServerName and get the node certificate; clients get
// --tls-cert when given, else the node certificate too. Client
// certificates are verified against the cluster CA and --tls-ca; with
// --tls-ca every caller must present one (as without a cluster key),
// otherwise only peers do.
func (id *nodeIdentity) serverConfig(certs *certreload.Reloader) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.VerifyClientCertIfGiven}
	base.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if certs == nil || hello.ServerName == clusterkey.PeerServerName {
			return id.Certificate(), nil
		}
		return certs.GetCertificate(hello)
	}
	if certs != nil && certs.CAPool() != nil {
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		pool := x509.NewCertPool()
		if certs != nil && certs.CAPool() != nil {
			pool = certs.CAPool().Clone()
		}
		pool.AddCert(id.CA().Cert)
		c.ClientCAs = pool
		return c, nil
	}
	return base
}

// peerIdentity says who may call the peer service: with a cluster key a
// node certificate of the cluster CA; with --tls-ca (no cluster key) a
// certificate of that CA valid for server and client auth, the same node
// certificates --raft-tls trusts; without either nobody is checked, which
// checkExposure allows only on loopback or with --insecure.
func peerIdentity(id *nodeIdentity, certs *certreload.Reloader, haveCA bool) server.PeerIdentityFunc {
	switch {
	case id != nil:
		return server.ClusterIdentity(func(cs tls.ConnectionState) bool { return id.CA().Signed(cs.VerifiedChains) })
	case certs != nil && haveCA:
		return server.ClusterIdentity(func(cs tls.ConnectionState) bool {
			return slices.Contains(cs.PeerCertificates[0].ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		})
	}
	return nil
}

// interfaceIPs lists this host's unicast addresses.
func interfaceIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			out = append(out, n.IP.String())
		}
	}
	return out
}
