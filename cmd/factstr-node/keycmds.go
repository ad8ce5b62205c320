package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/factstr/factstr-go/internal/clusterkey"
)

// cmdKeygen prints a new random cluster key.
func cmdKeygen(args []string) error {
	fs := newFlagSet("keygen", "keygen\n\nPrints a new random cluster key (base64) for --cluster-key / FACTSTR_CLUSTER_KEY.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Println(clusterkey.Generate())
	return nil
}

// cmdCACert prints the public CA certificate derived from the cluster key,
// for clients' --tls-ca.
func cmdCACert(args []string) error {
	fs := newFlagSet("ca-cert", "ca-cert --cluster-key KEY\n\nPrints the cluster CA certificate (PEM) derived from the cluster key: give it to\nclients as --tls-ca. It is public; the cluster key is not.")
	key := fs.String("cluster-key", "", "the cluster key (base64)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("--cluster-key (or FACTSTR_CLUSTER_KEY) is required")
	}
	k, err := clusterkey.Parse(*key)
	if err != nil {
		return fmt.Errorf("--cluster-key: %w", err)
	}
	ca, err := k.CA()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(ca.PEM())
	return err
}

// cmdHealthcheck asks a node's gRPC health service whether it is ready
// (or, with --service liveness, alive), for container health checks and
// Kubernetes exec probes: kubelet's own gRPC probes cannot speak TLS.
// With the node's cluster key (FACTSTR_CLUSTER_KEY, which the container
// already has) it dials over TLS as a cluster identity and verifies the
// node against the cluster CA; without one, in the clear. Health checks
// need no token.
func cmdHealthcheck(ctx context.Context, args []string) error {
	fs := newFlagSet("healthcheck", "healthcheck [--addr 127.0.0.1:7400] [--service liveness]\n\nExit 0 if the node's health service reports SERVING (readiness by default).")
	addr := fs.String("addr", "127.0.0.1:7400", "the node's gRPC address")
	service := fs.String("service", "", `health service: "" (readiness: knows a leader, caught up) or "liveness"`)
	key := fs.String("cluster-key", "", "the node's cluster key (base64); empty: plaintext")
	timeout := fs.Duration("timeout", 3*time.Second, "bound on the check")
	if err := parse(fs, args); err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if *key != "" {
		k, err := clusterkey.Parse(*key)
		if err != nil {
			return fmt.Errorf("--cluster-key: %w", err)
		}
		ca, err := k.CA()
		if err != nil {
			return err
		}
		is, err := clusterkey.NewIssuer(ca, clusterkey.IssuerOptions{NodeID: "healthcheck", Lifetime: time.Hour})
		if err != nil {
			return err
		}
		creds = is.PeerCredentials()
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		return fmt.Errorf("health check %s: %w", *addr, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check %s: %s", *addr, res.GetStatus())
	}
	return nil
}

// clusterCAFromEnv returns the cluster CA of FACTSTR_CLUSTER_KEY, or nil.
// A client command run inside a node's container (kubectl exec factstr-0
// -- factstr-node status) has the node's key in its environment; it uses
// it only to verify the node, as --tls-ca would.
func clusterCAFromEnv() *x509.CertPool {
	s := os.Getenv("FACTSTR_CLUSTER_KEY")
	if s == "" {
		return nil
	}
	k, err := clusterkey.Parse(s)
	if err != nil {
		return nil
	}
	ca, err := k.CA()
	if err != nil {
		return nil
	}
	return ca.Pool()
}
