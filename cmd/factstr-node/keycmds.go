package main

import (
	"errors"
	"fmt"
	"os"

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
