package runner

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/internal/clusterkey"
)

func TestSecurity(t *testing.T) {
	a, err := newSecurity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSecurity()
	if err != nil {
		t.Fatal(err)
	}
	if a.key == b.key || a.token == b.token {
		t.Fatal("two runs share a cluster key or a token")
	}
	if _, err := clusterkey.Parse(a.key); err != nil {
		t.Fatalf("the cluster key does not parse: %v", err)
	}
	if tok, err := base64.RawURLEncoding.DecodeString(a.token); err != nil || len(tok) != 24 {
		t.Fatalf("token %q: %d bytes, %v", a.token, len(tok), err)
	}
	env := a.nodeEnv()
	if len(env) != 2 || env[0] != "FACTSTR_CLUSTER_KEY="+a.key || env[1] != "FACTSTR_TOKEN="+a.token {
		t.Fatalf("node environment %v", env)
	}
	for _, e := range env {
		if strings.Contains(e, "\n") {
			t.Fatalf("environment entry with a newline: %q", e)
		}
	}
	if n := len(a.clientOptions()); n != 2 {
		t.Fatalf("%d client options, want TLS and the token", n)
	}
}
