// Command factstr-node runs a FACTSTR node (serve, the default) and talks to
// running nodes from a terminal (append, query, tail, status, admin ...).
//
//	factstr-node                      # a single node in ./factstr-data on 127.0.0.1:7400
//	factstr-node serve --help         # every server flag (each also FACTSTR_<NAME>)
//	factstr-node append --type T --payload '{"a":1}'
//	factstr-node query --type T
//	factstr-node tail --durable billing
//	factstr-node status
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `factstr-node: a clustered, replicated event store.

Usage:
  factstr-node [serve] [flags]     run a node (default: single node, ./factstr-data, 127.0.0.1:7400)
  factstr-node append  [flags]     append events (a batch with repeated --type/--payload)
  factstr-node query   [flags]     query events
  factstr-node tail    [flags]     print a live or durable stream as JSON lines
  factstr-node status  [flags]     cluster status
  factstr-node admin <command>     members, join, leave, remove, transfer-leadership, snapshot, recover
  factstr-node bench   [flags]     load a running cluster: append, append-if, query, stream
  factstr-node keygen              print a new cluster key (--cluster-key)
  factstr-node ca-cert             print the CA certificate of a cluster key (clients' --tls-ca)
  factstr-node healthcheck         exit 0 if a node is ready (container and Kubernetes probes)
  factstr-node version

Run 'factstr-node <command> --help' for a command's flags. Every flag can also
be set as an environment variable FACTSTR_<NAME> (for example FACTSTR_DATA_DIR).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		cmd = "help"
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args)
	case "append":
		err = cmdAppend(ctx, args)
	case "query":
		err = cmdQuery(ctx, args)
	case "tail":
		err = cmdTail(ctx, args)
	case "status":
		err = cmdStatus(ctx, args)
	case "admin":
		err = cmdAdmin(ctx, args)
	case "bench":
		err = cmdBench(ctx, args)
	case "keygen":
		err = cmdKeygen(args)
	case "ca-cert":
		err = cmdCACert(args)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args)
	case "version":
		fmt.Println(version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "factstr-node: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(os.Stderr, "factstr-node %s: %v\n", cmd, oneLine(err))
		return 1
	}
	return 0
}
