package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names and addresses the suite owns. Nothing else is touched: the bridge
// carries only 10.77.0.0/24, the root namespace's end is .1 (clients), node
// i is .10+i.
const (
	Bridge    = "fsjbr0"
	NSPrefix  = "fsj-n"
	VethPfx   = "fsj-v"
	Subnet    = "10.77.0"
	ClientIP  = Subnet + ".1"
	StateDir  = "/tmp/factstr-jepsen"
	nftTable  = "jepsen"
	GRPCPort  = 7400
	RaftPort  = 7401
	GossipPrt = 7402
)

func nsName(i int) string   { return fmt.Sprintf("%s%d", NSPrefix, i) }
func nodeIP(i int) string   { return fmt.Sprintf("%s.%d", Subnet, 10+i) }
func vethName(i int) string { return fmt.Sprintf("%s%d", VethPfx, i) }

func sh(ctx context.Context, stdin string, name string, args ...string) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Preflight checks root and the tools, and that our address range is free.
func Preflight() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the fault suite needs root (network namespaces, a bridge, nftables): run it as root, e.g. sudo make jepsen-smoke")
	}
	for _, t := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: install iproute2 and nftables (apt-get install -y iproute2 nftables)", t)
		}
	}
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return fmt.Errorf("ip addr: %v", err)
	}
	for _, ln := range strings.Split(string(out), "\n") {
		if strings.Contains(ln, " "+Subnet+".") && !strings.Contains(ln, Bridge) {
			return fmt.Errorf("address range %s.0/24 is already used on this machine (%s); refusing to touch it", Subnet, strings.TrimSpace(ln))
		}
	}
	return nil
}

// Setup creates the bridge and n namespaces (removing leftovers first).
func Setup(ctx context.Context, n int) error {
	Cleanup(n + 2)
	steps := [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", ClientIP + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	}
	for i := 1; i <= n; i++ {
		ns := nsName(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", vethName(i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", vethName(i), "master", Bridge},
			[]string{"link", "set", vethName(i), "up"},
			[]string{"-n", ns, "addr", "add", nodeIP(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := sh(ctx, "", "ip", s...); err != nil {
			return err
		}
	}
	// With br_netfilter, bridged packets traverse the root namespace's
	// FORWARD chain, whose policy Docker sets to DROP: let our bridge's own
	// traffic (node to node) through. Removed again by Cleanup.
	for _, ipt := range iptablesCmds() {
		if err := sh(ctx, "", ipt, "-I", "FORWARD", "-i", Bridge, "-o", Bridge, "-m", "comment", "--comment", fwComment, "-j", "ACCEPT"); err != nil {
			return err
		}
	}
	for i := 1; i <= n; i++ {
		if err := sh(ctx, fmt.Sprintf("table inet %s {\n chain input { type filter hook input priority 0; policy accept; }\n}\n", nftTable),
			"ip", "netns", "exec", nsName(i), "nft", "-f", "-"); err != nil {
			return err
		}
	}
	return nil
}

// SetRules replaces node i's input rules (nft syntax, one rule per line).
func SetRules(ctx context.Context, i int, rules []string) error {
	script := fmt.Sprintf("flush chain inet %s input\n", nftTable)
	for _, r := range rules {
		script += fmt.Sprintf("add rule inet %s input %s\n", nftTable, r)
	}
	return sh(ctx, script, "ip", "netns", "exec", nsName(i), "nft", "-f", "-")
}

// Cleanup removes everything the suite may have left: processes listed in
// the pid file (only if they are factstr-node), namespaces (their nft
// tables go with them), veths and the bridge. Safe to run any time.
func Cleanup(maxNodes int) []string {
	did := cleanupProxies() // runner/latency.go
	if b, err := os.ReadFile(filepath.Join(StateDir, "pids")); err == nil {
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 {
				continue
			}
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !bytes.Contains(cmdline, []byte("factstr-node")) || !bytes.Contains(cmdline, []byte(StateDir)) {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			did = append(did, fmt.Sprintf("killed leftover node pid %d", pid))
		}
		_ = os.Remove(filepath.Join(StateDir, "pids"))
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ln := range strings.Split(string(out), "\n") {
		f := strings.Fields(ln)
		if len(f) > 0 && strings.HasPrefix(f[0], NSPrefix) {
			// processes still inside (should be none) would keep nothing alive but sockets
			if pids, err := exec.Command("ip", "netns", "pids", f[0]).Output(); err == nil {
				for _, p := range strings.Fields(string(pids)) {
					pid, _ := strconv.Atoi(p)
					cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					if pid > 1 && bytes.Contains(cmdline, []byte("factstr-node")) {
						_ = syscall.Kill(pid, syscall.SIGCONT)
						_ = syscall.Kill(pid, syscall.SIGKILL)
						did = append(did, fmt.Sprintf("killed node pid %d in %s", pid, f[0]))
					}
				}
			}
			if exec.Command("ip", "netns", "del", f[0]).Run() == nil {
				did = append(did, "deleted namespace "+f[0])
			}
		}
	}
	did = append(did, cleanupLazyMounts()...) // lazyfs data mounts (powerloss.go)
	for i := 1; i <= maxNodes; i++ {
		if exec.Command("ip", "link", "show", vethName(i)).Run() == nil {
			_ = exec.Command("ip", "link", "del", vethName(i)).Run()
			did = append(did, "deleted "+vethName(i))
		}
	}
	for _, ipt := range iptablesCmds() {
		for k := 0; k < 10 && exec.Command(ipt, "-D", "FORWARD", "-i", Bridge, "-o", Bridge, "-m", "comment", "--comment", fwComment, "-j", "ACCEPT").Run() == nil; k++ {
			did = append(did, "removed FORWARD accept rule ("+ipt+")")
		}
	}
	if exec.Command("ip", "link", "show", Bridge).Run() == nil {
		_ = exec.Command("ip", "link", "del", Bridge).Run()
		did = append(did, "deleted bridge "+Bridge)
	}
	return did
}

const fwComment = "factstr-jepsen"

// iptablesCmds are the iptables front ends present (nft-backed and legacy
// tables can both filter bridged traffic).
func iptablesCmds() []string {
	var out []string
	for _, c := range []string{"iptables", "iptables-legacy"} {
		if _, err := exec.LookPath(c); err == nil {
			if exec.Command(c, "-S", "FORWARD").Run() == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
