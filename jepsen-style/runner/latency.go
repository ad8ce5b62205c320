package runner

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/factstr/factstr-go/internal/spawn"
	"github.com/factstr/factstr-go/jepsen-style/proxy"
)

// The latency nemesis needs a TCP proxy in front of every node's Raft port
// (no netem in this kernel). Each proxy runs inside its node's namespace,
// so a peer's connection to it still arrives from the peer's address and
// the nftables partitions still drop it. The node advertises the proxy's
// port (--raft-advertise-addr), so every inbound Raft connection to node i,
// and the replies on it, pass node i's proxy. The runner sets the delay
// over HTTP from the root namespace (the bridge's 10.77.0.1, which no drop
// rule matches).
//
// Proxies run only when Config.RaftProxy is set (cmd/jepsen sets it when
// the schedule has the latency nemesis); other runs are unchanged.

const (
	ProxyPort   = 7411 // the Raft address nodes advertise when proxied
	ProxyCtlPrt = 7412 // the proxy's HTTP control endpoint

	// ProxyArg is the first argument that makes the jepsen binary run a
	// proxy (jepsen -proxy listen=...,target=...,control=...): the runner
	// starts proxies from its own executable, which must hand that
	// argument to proxy.Main.
	ProxyArg = "-proxy"

	proxyPidFile = "proxy-pids"
)

func proxySpec(i int) proxy.Spec {
	return proxy.Spec{
		Listen:  fmt.Sprintf("%s:%d", nodeIP(i), ProxyPort),
		Target:  fmt.Sprintf("%s:%d", nodeIP(i), RaftPort),
		Control: fmt.Sprintf("%s:%d", nodeIP(i), ProxyCtlPrt),
	}
}

// proxyProc is one proxy process in a node's namespace.
type proxyProc struct {
	i      int
	spec   proxy.Spec
	cmd    *exec.Cmd
	exited chan struct{}
}

// nodeExtraArgs are the serve flags this file and clock.go add to node i.
func (c *cluster) nodeExtraArgs(i int) []string {
	args := []string{"--debug-clock-offset-file", clockFile(i)}
	if c.cfg.RaftProxy {
		args = append(args, "--raft-advertise-addr", proxySpec(i).Listen)
	}
	return args
}

// startProxies starts one proxy per node (only with Config.RaftProxy) and
// waits until every control endpoint answers.
func (c *cluster) startProxies(ctx context.Context) error {
	if !c.cfg.RaftProxy {
		return nil
	}
	exe := c.cfg.ProxyBin
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("raft proxies: %w", err)
		}
	}
	for i := 1; i <= c.cfg.Nodes; i++ {
		spec := proxySpec(i)
		lf, err := os.OpenFile(filepath.Join(c.cfg.OutDir, fmt.Sprintf("proxy-n%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cmd := exec.Command("ip", "netns", "exec", nsName(i), exe, ProxyArg, spec.String())
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := spawn.Start(cmd); err != nil {
			lf.Close()
			return fmt.Errorf("start proxy for n%d: %w", i, err)
		}
		p := &proxyProc{i: i, spec: spec, cmd: cmd, exited: make(chan struct{})}
		c.proxyPids.set(cmd.Process.Pid, true)
		go func() {
			_ = cmd.Wait()
			lf.Close()
			c.proxyPids.set(cmd.Process.Pid, false)
			close(p.exited)
		}()
		c.mu.Lock()
		c.proxies = append(c.proxies, p)
		c.mu.Unlock()
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range c.proxies {
		for {
			_, _, err := proxy.GetRemote(ctx, p.spec.Control)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("proxy for n%d did not come up: %w", p.i, err)
			}
			select {
			case <-p.exited:
				return fmt.Errorf("proxy for n%d exited (see proxy-n%d.log)", p.i, p.i)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	c.note("raft proxies up: n_i advertises Raft at %s.(10+i):%d, forwarded to :%d inside its namespace (control :%d)", Subnet, ProxyPort, RaftPort, ProxyCtlPrt)
	return nil
}

// stopProxies ends the proxy processes (SIGTERM, then SIGKILL) and notes
// what each forwarded.
func (c *cluster) stopProxies() {
	c.mu.Lock()
	ps := c.proxies
	c.proxies = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func(p *proxyProc) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, st, err := proxy.GetRemote(ctx, p.spec.Control)
			cancel()
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			how := "stopped"
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
				how = "killed"
			}
			if err != nil {
				c.note("raft proxy n%d %s (stats unavailable: %v)", p.i, how, err)
			} else {
				c.note("raft proxy n%d %s: %d connections, %d bytes forwarded", p.i, how, st.Accepted, st.Bytes)
			}
		}(p)
	}
	wg.Wait()
}

// setLatency applies s to the proxies of nodes (nil: every node).
func (c *cluster) setLatency(ctx context.Context, nodes []int, s func(i int) proxy.Settings) error {
	if nodes == nil {
		for i := 1; i <= c.cfg.Nodes; i++ {
			nodes = append(nodes, i)
		}
	}
	var first error
	for _, i := range nodes {
		if err := proxy.SetRemote(ctx, proxySpec(i).Control, s(i)); err != nil && first == nil {
			first = fmt.Errorf("proxy n%d: %w", i, err)
		}
	}
	return first
}

// latencyFault delays every Raft connection on every node's proxy by
// 50–110 ms plus up to 40 ms of jitter in each direction (a Raft round
// trip: 100–300 ms, against 500 ms Raft timeouts).
func (c *cluster) latencyFault(ctx context.Context, rng *rand.Rand) (*fault, error) {
	if !c.cfg.RaftProxy {
		return nil, fmt.Errorf("latency needs the Raft proxies (Config.RaftProxy; cmd/jepsen sets it when the schedule has latency)")
	}
	delays := map[int]time.Duration{}
	var desc []string
	for i := 1; i <= c.cfg.Nodes; i++ {
		delays[i] = time.Duration(50+rng.Intn(61)) * time.Millisecond
		desc = append(desc, fmt.Sprintf("n%d %v", i, delays[i]))
	}
	const jitter = 40 * time.Millisecond
	heal := func(ctx context.Context) {
		if err := c.setLatency(ctx, nil, func(int) proxy.Settings { return proxy.Settings{} }); err != nil {
			c.note("heal latency: %v", err)
		}
	}
	f := &fault{desc: fmt.Sprintf("Raft latency (each direction, +0–%v jitter): %s", jitter, strings.Join(desc, ", ")), heal: heal}
	return f, c.setLatency(ctx, nil, func(i int) proxy.Settings { return proxy.Settings{Delay: delays[i], Jitter: jitter} })
}

// isProxyCmdline recognises a proxy process of this suite.
func isProxyCmdline(cmdline []byte) bool {
	return bytes.Contains(cmdline, []byte(ProxyArg+"\x00listen="+Subnet+"."))
}

// cleanupProxies kills proxy processes left by an interrupted run: those in
// the pid file and any in our namespaces.
func cleanupProxies() []string {
	var did []string
	kill := func(pid int, where string) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || pid <= 1 || !isProxyCmdline(cmdline) {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		did = append(did, fmt.Sprintf("killed leftover raft proxy pid %d%s", pid, where))
	}
	if b, err := os.ReadFile(filepath.Join(StateDir, proxyPidFile)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				kill(pid, "")
			}
		}
		_ = os.Remove(filepath.Join(StateDir, proxyPidFile))
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ln := range strings.Split(string(out), "\n") {
		f := strings.Fields(ln)
		if len(f) == 0 || !strings.HasPrefix(f[0], NSPrefix) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", f[0]).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil {
				kill(pid, " in "+f[0])
			}
		}
	}
	return did
}
