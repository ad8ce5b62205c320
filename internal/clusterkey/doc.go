// Package clusterkey turns one shared secret, the cluster key, into the
// credentials that authenticate the nodes of a cluster to each other:
//
//   - a certificate authority, derived deterministically (HKDF-SHA256 from
//     the key, then an Ed25519 key from that seed; the CA certificate's
//     fields are fixed, so every node derives the same bytes and `factstr-node
//     ca-cert` prints a stable certificate clients can pin);
//   - a leaf certificate each node issues itself at start with a fresh key,
//     valid for server and client auth, naming the node id, and renewed
//     long before it expires (Issuer);
//   - the memberlist keyring key for gossip (HKDF with a different info
//     string, so it reveals nothing about the CA key).
//
// Everything on the wire is standard TLS 1.3 (Raft and the peer gRPC
// service) or memberlist's own AES-GCM keyring (gossip); this package only
// derives keys and issues certificates with crypto/x509.
//
// Whoever holds the cluster key can mint a node certificate, so the key is
// a node secret: clients get the CA certificate (PEM), never the key.
package clusterkey
