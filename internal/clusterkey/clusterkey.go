package clusterkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// KeySize is the length of a cluster key in bytes.
const KeySize = 32

// ErrBadKey is returned for a cluster key that is not 32 bytes in base64.
var ErrBadKey = errors.New("cluster key must be 32 random bytes in base64 (factstr-node keygen prints one)")

// HKDF info strings. Each derived secret has its own, so one never tells
// anything about another; the version suffix lets a future derivation
// change without colliding.
const (
	infoCA     = "factstr cluster CA ed25519 seed v1"
	infoSerial = "factstr cluster CA serial v1"
	infoGossip = "factstr gossip keyring key v1"
)

// PeerServerName is the TLS server name (SNI) nodes send when they dial
// each other's gRPC port. A node answers it with its cluster certificate
// even when it serves an operator's --tls-cert to clients, and the dialer
// verifies the answer against the cluster CA only.
const PeerServerName = "peer.factstr.internal"

// caSubject names the derived CA; fixed so every node derives the same
// certificate.
const caSubject = "factstr cluster CA"

// Key is a parsed cluster key.
type Key struct{ b [KeySize]byte }

// Parse decodes a base64 (standard or URL alphabet, padded or not) cluster
// key of exactly KeySize bytes.
func Parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return Key{}, fmt.Errorf("%w: not base64: %w", ErrBadKey, err)
	}
	if len(raw) != KeySize {
		return Key{}, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(raw))
	}
	var k Key
	copy(k.b[:], raw)
	return k, nil
}

// Generate returns a new random cluster key in base64.
func Generate() string {
	b := make([]byte, KeySize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(b)
}

func (k Key) derive(info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, k.b[:], nil, info, n)
	if err != nil {
		panic(err) // only for n beyond 255*32 bytes, which no caller asks
	}
	return out
}

// GossipKey returns the 32-byte memberlist keyring key (AES-256-GCM).
func (k Key) GossipKey() []byte { return k.derive(infoGossip, 32) }

// CA is the certificate authority derived from a cluster key.
type CA struct {
	Cert *x509.Certificate
	key  ed25519.PrivateKey
	pool *x509.CertPool
}

// CA derives the cluster CA. Same key, same certificate, byte for byte.
func (k Key) CA() (*CA, error) {
	priv := ed25519.NewKeyFromSeed(k.derive(infoCA, ed25519.SeedSize))
	serial := new(big.Int).SetBytes(k.derive(infoSerial, 16))
	serial.SetBit(serial, 127, 0).SetBit(serial, 126, 1) // positive, 127 bits
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: caSubject},
		// Fixed dates: the CA lives as long as the key; rotate the key to
		// retire it. 9999-12-31 is RFC 5280's "no well-defined expiration".
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("clusterkey: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("clusterkey: parse CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, key: priv, pool: pool}, nil
}

// Pool returns a pool holding only the CA certificate. It must not be
// modified.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// PEM returns the CA certificate in PEM, what clients pass as --tls-ca.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Issue signs a new node certificate for nodeID, valid from now-skew for
// lifetime, for server and client auth, with a fresh ECDSA P-256 key. The
// node id is the subject's common name and a URI SAN
// (factstr://node/<id>); hosts (IP addresses or DNS names) become SANs so
// that clients can verify the node by the address they dial, next to
// PeerServerName.
func (ca *CA) Issue(nodeID string, hosts []string, now time.Time, lifetime time.Duration) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("clusterkey: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("clusterkey: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: nodeID, Organization: []string{caSubject}},
		// An hour back: a peer whose clock runs behind must not see a
		// certificate from its future.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{PeerServerName},
	}
	if u, err := NodeURI(nodeID); err == nil {
		tmpl.URIs = append(tmpl.URIs, u)
	}
	seen := map[string]bool{PeerServerName: true}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("clusterkey: issue node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("clusterkey: parse node certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

// Verify checks that certs (leaf first, as presented in a handshake) chain
// to the CA and that the leaf is a node certificate: valid now for server
// and for client auth.
func (ca *CA) Verify(certs []*x509.Certificate, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("no certificate presented")
	}
	opts := x509.VerifyOptions{Roots: ca.pool, Intermediates: x509.NewCertPool(), CurrentTime: now}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	for _, ku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		opts.KeyUsages = []x509.ExtKeyUsage{ku}
		if _, err := certs[0].Verify(opts); err != nil {
			return fmt.Errorf("certificate %q is not a node certificate of this cluster: %w", certs[0].Subject.CommonName, err)
		}
	}
	return nil
}

// Signed reports whether a verified chain (as crypto/tls leaves in
// ConnectionState.VerifiedChains) ends at this CA.
func (ca *CA) Signed(chains [][]*x509.Certificate) bool {
	for _, ch := range chains {
		if len(ch) > 0 && ch[len(ch)-1].Equal(ca.Cert) {
			return true
		}
	}
	return false
}
