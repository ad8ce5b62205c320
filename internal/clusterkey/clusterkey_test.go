package clusterkey

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func mustKey(t *testing.T, s string) Key {
	t.Helper()
	k, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParse(t *testing.T) {
	good := Generate()
	raw, _ := base64.StdEncoding.DecodeString(good)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"generated", good, true},
		{"trailing newline", good + "\n", true},
		{"url alphabet unpadded", base64.RawURLEncoding.EncodeToString(raw), true},
		{"empty", "", false},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), false},
		{"not base64", "not*base64*at*all", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("Parse(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
		})
	}
}

func TestCADeterministic(t *testing.T) {
	s := Generate()
	a, err := mustKey(t, s).CA()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustKey(t, s).CA()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.PEM(), b.PEM()) {
		t.Fatal("the same key derived two different CA certificates")
	}
	other, err := mustKey(t, Generate()).CA()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.PEM(), other.PEM()) || a.Cert.Equal(other.Cert) {
		t.Fatal("two keys derived the same CA")
	}
	k := mustKey(t, s)
	if g := k.GossipKey(); len(g) != 32 || bytes.Equal(g, k.derive(infoCA, 32)) {
		t.Fatalf("gossip key %x: want 32 bytes unrelated to the CA seed", g)
	}
}

func TestIssueAndVerify(t *testing.T) {
	ca, err := mustKey(t, Generate()).CA()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := mustKey(t, Generate()).CA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leaf, err := ca.Issue("node-1", []string{"127.0.0.1", "0.0.0.0", "db.example"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := stranger.Issue("node-1", nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Leaf.Subject.CommonName != "node-1" || len(leaf.Leaf.URIs) != 1 || leaf.Leaf.URIs[0].String() != "factstr://node/node-1" {
		t.Fatalf("subject %v URIs %v: want the node id in both", leaf.Leaf.Subject, leaf.Leaf.URIs)
	}
	if err := leaf.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := leaf.Leaf.VerifyHostname("db.example"); err != nil {
		t.Fatal(err)
	}
	for _, ip := range leaf.Leaf.IPAddresses {
		if ip.Equal(net.IPv4zero) {
			t.Fatal("wildcard address in the SANs")
		}
	}
	chain := func(c *tls.Certificate) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
		at    time.Time
		want  string
	}{
		{"own node certificate", chain(leaf), now, ""},
		{"another cluster's certificate", chain(foreign), now, "not a node certificate"},
		{"expired", chain(leaf), now.Add(2 * time.Hour), "expired"},
		{"none", nil, now, "no certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ca.Verify(tc.certs, tc.at)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
