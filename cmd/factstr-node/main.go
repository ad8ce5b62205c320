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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"google.golang.org/grpc/status"
)

// version and commit are set at build time with
// -ldflags "-X main.version=... -X main.commit=..." (make build, make
// release); without them, version reports what the Go toolchain recorded.
var (
	version = "dev"
	commit  = ""
)

const usage = `factstr-node: a clustered, replicated event store.

Usage:
  factstr-node [serve] [flags]          run a node (default: single node, ./factstr-data, 127.0.0.1:7400)
  factstr-node append  [flags]          append events (a batch with repeated --type/--payload)
  factstr-node query   [flags]          query events
  factstr-node tail    [flags]          print a live or durable stream as JSON lines
  factstr-node status  [flags]          cluster status
  factstr-node admin <command> [args]   members, join, leave, remove, transfer-leadership, snapshot, recover
  factstr-node bench   [flags]          load a running cluster: append, append-if, query, stream
  factstr-node keygen                   print a new cluster key (--cluster-key)
  factstr-node ca-cert                  print the CA certificate of a cluster key (clients' --tls-ca)
  factstr-node healthcheck              exit 0 if a node is ready (container and Kubernetes probes)
  factstr-node completion bash|zsh      print a shell completion script
  factstr-node version                  module version, commit and Go version

Run 'factstr-node <command> --help' for a command's flags. Every flag can also
be set as an environment variable FACTSTR_<NAME> (for example FACTSTR_DATA_DIR).
The client commands talk to --addr (FACTSTR_ADDR), a comma-separated list of
node gRPC addresses host:port (default 127.0.0.1:7400), and fail over among them.
`

// commandNames are the top-level commands, for suggestions and completion.
var commandNames = []string{"serve", "append", "query", "tail", "status", "admin", "bench", "keygen", "ca-cert", "healthcheck", "completion", "version", "help"}

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
		cmd, args = "help", nil
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
	case "completion":
		err = cmdCompletion(os.Stdout, args)
	case "version":
		err = cmdVersion(os.Stdout, args)
	case "help":
		err = cmdHelp(ctx, args)
	default:
		msg := fmt.Sprintf("unknown command %q", cmd)
		if s := closest(cmd, commandNames); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		err = usagef("%s ('factstr-node help' lists the commands)", msg)
		cmd = ""
	}
	return exitCode(cmd, err)
}

// exitCode prints err as one line and returns the exit status: 0 for
// success and help, 2 for a refused command line, 1 for everything else.
func exitCode(cmd string, err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	prefix := "factstr-node"
	if cmd != "" {
		prefix += " " + cmd
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "%s: %s\n", prefix, oneLine(err))
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n", prefix, describe(err))
	return 1
}

var rpcPrefix = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// describe writes a gRPC error as its message and code ("... (Unavailable)")
// rather than the "rpc error: code = ... desc = ..." wording.
func describe(err error) string {
	msg := oneLine(err)
	if s, ok := status.FromError(err); ok && s.Code() != 0 {
		msg = rpcPrefix.ReplaceAllString(msg, "") + " (" + s.Code().String() + ")"
	}
	return msg
}

// cmdHelp prints the command list, or with a command name that command's
// help (`factstr-node help admin snapshot`).
func cmdHelp(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Print(usage)
		return nil
	}
	if args[0] == "help" || args[0] == "completion" || args[0] == "version" {
		fmt.Print(usage)
		return nil
	}
	if !contains(commandNames, args[0]) {
		return usagef("unknown command %q ('factstr-node help' lists the commands)", args[0])
	}
	return exitErr(run(ctx, append(args, "--help")))
}

func exitErr(code int) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("exit status %d", code)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cmdVersion prints the version, commit and Go version, from -ldflags
// where the build set them and from the build information otherwise.
func cmdVersion(w io.Writer, args []string) error {
	var asJSON bool
	fs := newFlagSet("version", "version [--json]", "Print the module version, the commit and the Go version of this binary.")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	if err := parse(fs, args); err != nil {
		return err
	}
	v := buildVersion()
	if asJSON {
		_, err := fmt.Fprintf(w, "{\"version\":%q,\"commit\":%q,\"modified\":%t,\"go\":%q,\"platform\":%q}\n", v.version, v.commit, v.modified, v.goVersion, v.platform)
		return err
	}
	c := v.commit
	if c == "" {
		c = "unknown"
	}
	if v.modified {
		c += " (modified)"
	}
	_, err := fmt.Fprintf(w, "factstr-node %s\ncommit %s\n%s %s\n", v.version, c, v.goVersion, v.platform)
	return err
}

type versionInfo struct {
	version, commit, goVersion, platform string
	modified                             bool
}

func buildVersion() versionInfo {
	v := versionInfo{version: version, commit: commit, goVersion: runtime.Version(), platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if v.commit == "" {
				v.commit = s.Value
			}
		case "vcs.modified":
			if commit == "" {
				v.modified = s.Value == "true"
			}
		}
	}
	if strings.HasSuffix(v.commit, "-dirty") {
		v.commit, v.modified = strings.TrimSuffix(v.commit, "-dirty"), true
	}
	return v
}

// flagNames lists a flag set's flags as --name, for completion.
func flagNames(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, "--"+f.Name) })
	return out
}
