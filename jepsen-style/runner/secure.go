package runner

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/internal/clusterkey"
)

// security is one run's cluster key and admin token. The nodes bind
// namespace addresses, not loopback, so they refuse to start without both.
type security struct {
	key, token string
	ca         *clusterkey.CA
}

func newSecurity() (*security, error) {
	key := clusterkey.Generate()
	k, err := clusterkey.Parse(key)
	if err != nil {
		return nil, err
	}
	ca, err := k.CA()
	if err != nil {
		return nil, fmt.Errorf("derive the cluster CA: %w", err)
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	return &security{key: key, token: base64.RawURLEncoding.EncodeToString(tok), ca: ca}, nil
}

// nodeEnv passes the secrets to a node through its environment.
func (s *security) nodeEnv() []string {
	return []string{"FACTSTR_CLUSTER_KEY=" + s.key, "FACTSTR_TOKEN=" + s.token}
}

// clientOptions verify the nodes against the cluster CA (their
// certificates name their namespace IPs) and send the admin token.
func (s *security) clientOptions() []client.Option {
	return []client.Option{client.WithTLS(&tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}), client.WithToken(s.token)}
}
