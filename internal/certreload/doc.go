// Package certreload serves TLS material from files that change while the
// process runs, such as a Kubernetes Secret that cert-manager rewrites
// before the certificate expires.
//
// Start loads a certificate and key and, optionally, a PEM CA bundle, and
// then polls the three files every Options.Interval (default 5 s), by
// modification time and size. It polls rather than using inotify, which
// misses the symlink swap Kubernetes uses to update Secret volumes. When a
// file changes, all three are read again; if that fails (a file half
// written, a key that does not match the certificate, a bundle without a
// certificate), the last good material stays in use, the error is logged,
// and the files are tried again on their next change. Each successful
// reload is logged with the new certificate's serial and NotAfter.
//
// The material is used through tls.Config hooks, so a TLS listener or
// dialer built once picks up every rotation on its next handshake;
// established connections keep the certificate they were made with:
//
//   - ServerConfig: GetCertificate for the server certificate and, with a
//     CA, GetConfigForClient to require client certificates signed by the
//     current bundle.
//   - ClientConfig: GetClientCertificate, and with a CA a VerifyConnection
//     that verifies the server (chain and host name) against the current
//     bundle, since tls.Config.RootCAs is fixed.
//   - GRPCClientCredentials: gRPC transport credentials for dialing that
//     build a config per connection from the current material.
//   - GetCertificate, GetClientCertificate and CAPool for callers with
//     their own verification (raftlog's Config.TLS and Config.TLSRootCAs).
//
// A long-lived Go client of factstr can do the same for its own client
// certificate: pass client.WithTLS a tls.Config whose GetClientCertificate
// returns the current certificate.
package certreload
