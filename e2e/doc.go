// Package e2e holds end-to-end tests that run real factstr-node processes
// (through internal/testcluster) and talk to them over gRPC, with the Go
// client and with the binary's own subcommands. They are skipped with
// -short.
package e2e
