package validate

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the main module, seen from deploy/k8s/validate.
const repoRoot = "../../.."

var nodeBin string

func TestMain(m *testing.M) {
	code, err := func() (int, error) {
		if b := os.Getenv("FACTSTR_NODE_BIN"); b != "" {
			nodeBin = b
			return m.Run(), nil
		}
		dir, err := os.MkdirTemp("", "factstr-validate-")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
		nodeBin = filepath.Join(dir, "factstr-node")
		cmd := exec.Command("go", "build", "-o", nodeBin, "./cmd/factstr-node")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("build factstr-node: %v\n%s", err, out)
		}
		return m.Run(), nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// flagInfo is a flag as `factstr-node <cmd> --help` prints it.
type flagInfo struct {
	bool bool // takes no value
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]flagInfo{}
	flagLine  = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?:\s+(\S+))?\s*$`)
)

// flagsOf parses the flags of a factstr-node subcommand from its --help
// output (Go's flag.PrintDefaults format: "  -name type", no type for
// booleans), running the binary built from this checkout.
func flagsOf(t *testing.T, sub string) map[string]flagInfo {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if f, ok := helpCache[sub]; ok {
		return f
	}
	args := strings.Fields(sub)
	cmd := exec.Command(nodeBin, append(args, "--help")...)
	cmd.Env = cleanEnv()
	out, _ := cmd.CombinedOutput() // --help exits 2
	flags := map[string]flagInfo{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = flagInfo{bool: m[2] == ""}
		}
	}
	if len(flags) == 0 {
		t.Fatalf("factstr-node %s --help printed no flags:\n%s", sub, out)
	}
	helpCache[sub] = flags
	return flags
}

// cleanEnv drops FACTSTR_* variables, which the binary would read.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "FACTSTR_") {
			env = append(env, e)
		}
	}
	return env
}

// subcommands of factstr-node whose flags a manifest may use.
var subcommands = map[string]bool{"serve": true, "append": true, "query": true, "tail": true, "status": true, "healthcheck": true}

// checkCommandLine checks a factstr-node command line (without the binary
// itself): the subcommand exists and every flag it gives is one the
// subcommand's --help lists.
func checkCommandLine(t *testing.T, where string, args []string) {
	t.Helper()
	sub := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
		if sub == "admin" && len(args) > 0 {
			sub, args = "admin "+args[0], args[1:]
		} else if !subcommands[sub] {
			t.Errorf("%s: unknown factstr-node subcommand %q", where, sub)
			return
		}
	}
	flags := flagsOf(t, sub)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue // a positional argument or a flag's value
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, ok := flags[name]
		if !ok {
			t.Errorf("%s: flag %q is not in `factstr-node %s --help`", where, a, sub)
			continue
		}
		if !f.bool && !hasValue {
			i++ // the value is the next argument
		}
	}
}

// checkEnvName checks that FACTSTR_<NAME> names a flag: of serve, or (for
// settings only client commands read, such as TLS_SERVER_NAME) of the client
// commands run in the container.
func checkEnvName(t *testing.T, where, env string) {
	t.Helper()
	name, ok := strings.CutPrefix(env, "FACTSTR_")
	if !ok {
		return
	}
	flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	if _, ok := flagsOf(t, "serve")[flag]; ok {
		return
	}
	if _, ok := flagsOf(t, "status")[flag]; ok {
		t.Logf("%s: %s is a client-command setting (status/query --%s), not a serve flag", where, env, flag)
		return
	}
	t.Errorf("%s: %s names no flag --%s of `factstr-node serve --help` (or of the client commands)", where, env, flag)
}

func TestHelpParsing(t *testing.T) {
	serve := flagsOf(t, "serve")
	for _, f := range []string{"node-id", "data-dir", "grpc-addr", "raft-addr", "gossip-addr", "advertise-addr", "bootstrap-expect", "join"} {
		if _, ok := serve[f]; !ok {
			t.Errorf("serve --help lacks --%s; the parser or the binary changed", f)
		}
	}
	if !serve["leave-on-terminate"].bool {
		t.Error("--leave-on-terminate should parse as a boolean flag")
	}
}
