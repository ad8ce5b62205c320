// Package deploy_test runs deploy/docker-compose.yml for real: it builds the
// container image (deploy/Dockerfile), starts the three-node cluster under a
// private compose project, appends through the Go client from the host,
// stops the leader's container while appends continue, starts it again and
// checks that every acknowledged append is on all three nodes.
//
// It needs a Docker engine and the docker compose plugin (Compose v2) or,
// failing that, docker-compose (Compose 1.29, as Debian packages it). Without an engine that answers it is skipped, except under CI=true,
// where it fails instead.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/clusterkey"
	"github.com/factstr/factstr-go/internal/freeport"
)

const eventType = "compose-test"

var services = []string{"node1", "node2", "node3"}

// TestComposeFile checks the compose file without Docker: no obsolete
// top-level version key, and default host ports that do not read as the
// Raft (7401) or gossip (7402) port of the usual numbering.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "version:") {
			t.Errorf("line %d: %q: Compose v2 ignores the top-level version key and warns about it", i+1, line)
		}
		if strings.Contains(line, "ports:") {
			ports = append(ports, strings.TrimSpace(line))
		}
	}
	want := []string{
		`ports: ["127.0.0.1:${FACTSTR_PORT_1:-7410}:7400", "127.0.0.1:${FACTSTR_HTTP_PORT_1:-7413}:7403"]`,
		`ports: ["127.0.0.1:${FACTSTR_PORT_2:-7420}:7400", "127.0.0.1:${FACTSTR_HTTP_PORT_2:-7423}:7403"]`,
		`ports: ["127.0.0.1:${FACTSTR_PORT_3:-7430}:7400", "127.0.0.1:${FACTSTR_HTTP_PORT_3:-7433}:7403"]`,
	}
	if !slices.Equal(ports, want) {
		t.Errorf("published ports %q; want %q", ports, want)
	}
}

func TestComposeCluster(t *testing.T) {
	inCI := os.Getenv("CI") == "true"
	if out, err := run(context.Background(), 30*time.Second, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		msg := fmt.Sprintf("no Docker engine answers (docker version: %v: %s)", err, strings.TrimSpace(out))
		if inCI {
			t.Fatalf("%s; under CI=true the compose test must run", msg)
		}
		t.Skipf("skipping the docker compose cluster test: %s", msg)
	}
	compose := composeCommand(t)
	if compose == nil {
		msg := "neither docker-compose nor the docker compose plugin is installed"
		if inCI {
			t.Fatalf("%s; under CI=true the compose test must run", msg)
		}
		t.Skipf("skipping the docker compose cluster test: %s", msg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	logStep := func(format string, args ...any) {
		t.Logf("[%5.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// The image, under a tag of its own so a developer's factstr-node:dev
	// is left alone.
	image := fmt.Sprintf("factstr-node:composetest-%d", os.Getpid())
	bin := buildImage(ctx, t, image)
	t.Cleanup(func() { _, _ = run(context.Background(), time.Minute, nil, "docker", "rmi", "-f", image) })
	logStep("built image %s", image)

	// The cluster, as a compose project of its own with free host ports.
	project := fmt.Sprintf("factstrcomposetest%d", os.Getpid())
	ports, err := freeport.GetN(6, false) // gRPC, then HTTP
	if err != nil {
		t.Fatal(err)
	}
	// The secrets, as an operator makes them (the compose file's header).
	key := clusterkey.Generate()
	token := fmt.Sprintf("compose-test-token-%d", os.Getpid())
	envFile := filepath.Join(t.TempDir(), "factstr.env")
	if err := os.WriteFile(envFile, []byte("FACTSTR_CLUSTER_KEY="+key+"\nFACTSTR_TOKEN="+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sec := clientSecurity(t, key, token)
	env := append(os.Environ(),
		"FACTSTR_ENV_FILE="+envFile,
		"FACTSTR_IMAGE="+image,
		fmt.Sprintf("FACTSTR_PORT_1=%d", ports[0]),
		fmt.Sprintf("FACTSTR_PORT_2=%d", ports[1]),
		fmt.Sprintf("FACTSTR_PORT_3=%d", ports[2]),
		fmt.Sprintf("FACTSTR_HTTP_PORT_1=%d", ports[3]),
		fmt.Sprintf("FACTSTR_HTTP_PORT_2=%d", ports[4]),
		fmt.Sprintf("FACTSTR_HTTP_PORT_3=%d", ports[5]),
	)
	dc := func(timeout time.Duration, args ...string) (string, error) {
		full := append(append(slices.Clone(compose[1:]), "-p", project, "-f", "docker-compose.yml"), args...)
		return run(ctx, timeout, env, compose[0], full...)
	}
	t.Cleanup(func() {
		// Runs on success, failure and t.Fatal alike.
		if t.Failed() {
			out, _ := run(context.Background(), time.Minute, env, compose[0],
				append(slices.Clone(compose[1:]), "-p", project, "-f", "docker-compose.yml", "logs", "--no-color", "--tail=80")...)
			t.Logf("compose logs (last 80 lines per node):\n%s", out)
		}
		out, err := run(context.Background(), 3*time.Minute, env, compose[0],
			append(slices.Clone(compose[1:]), "-p", project, "-f", "docker-compose.yml", "down", "-v", "--remove-orphans", "-t", "10")...)
		if err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := dc(5*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	logStep("compose up: project %s, gRPC on 127.0.0.1:%d,%d,%d", project, ports[0], ports[1], ports[2])

	addrs := make([]string, 3)
	for i, p := range ports[:3] {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	byName := map[string]int{}
	for i, s := range services {
		byName[s] = i
	}
	store, err := client.Dial(ctx, addrs, append(sec, client.WithRetryTimeout(45*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	leader := waitHealthy(ctx, t, store, 3, 2*time.Minute)
	logStep("cluster formed: leader %s, 3 healthy voters", leader)

	// The HTTP/JSON API of every node, published as the file says: TLS
	// with the cluster key's CA, the token required.
	for i, p := range ports[3:] {
		checkHTTPStatus(ctx, t, key, token, fmt.Sprintf("https://127.0.0.1:%d/v1/status", p), services[i])
	}
	logStep("HTTP/JSON API answers on 127.0.0.1:%d,%d,%d (TLS, token)", ports[3], ports[4], ports[5])

	// The members advertise their service names, which the host cannot
	// resolve: bench --on leader must use the published --addr of the
	// leader's node instead.
	// As an operator on the host would: the token, and the cluster key
	// to verify the nodes' certificates (never given to a node here).
	cliEnv := append(os.Environ(), "FACTSTR_CLUSTER_KEY="+key, "FACTSTR_TOKEN="+token)
	out, err := run(ctx, 2*time.Minute, cliEnv, bin, "bench", "--on", "leader", "--addr", strings.Join(addrs, ","),
		"--workload", "append", "--ops", "20", "--warmup", "0", "--concurrency", "2", "--connections", "1", "--quiet", "--json")
	if err != nil {
		t.Fatalf("factstr-node bench --on leader from the host: %v\n%s", err, out)
	}
	var br struct {
		Ops int64 `json:"ops"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &br); err != nil || br.Ops == 0 {
		t.Fatalf("bench --on leader: %d ops (%v); want some:\n%s", br.Ops, err, out)
	}
	logStep("bench --on leader from the host: %d ops", br.Ops)

	// Appenders run through the whole test; every acknowledged event is
	// recorded with its sequence number.
	ap := newAppenders(ctx, store, 4)
	ap.waitAcked(t, 100, time.Minute)
	logStep("%d appends acknowledged before the stop", ap.count())

	// Stop the leader's container (SIGTERM: it hands leadership over).
	if out, err := dc(2*time.Minute, "stop", "-t", "30", leader); err != nil {
		t.Fatalf("compose stop %s: %v\n%s", leader, err, out)
	}
	logStep("stopped the leader's container %s", leader)
	survivor := services[(byName[leader]+1)%3]
	newLeader := waitLeader(ctx, t, store.AdminAt(byName[survivor]), leader, time.Minute)
	logStep("new leader %s", newLeader)
	before := ap.count()
	time.Sleep(3 * time.Second)
	ap.waitAcked(t, before+100, time.Minute)
	logStep("%d appends acknowledged while %s was down", ap.count()-before, leader)

	if out, err := dc(2*time.Minute, "start", leader); err != nil {
		t.Fatalf("compose start %s: %v\n%s", leader, err, out)
	}
	logStep("started %s again", leader)
	waitHealthy(ctx, t, store, 3, 2*time.Minute)
	logStep("%s rejoined: 3 healthy voters", leader)
	before = ap.count()
	ap.waitAcked(t, before+100, time.Minute)
	acked, failures := ap.stop()
	logStep("appenders stopped: %d acknowledged in all, %d calls failed (unacknowledged, allowed)", len(acked), failures)
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged")
	}

	// Every acknowledged append is on every node: a local read on each node,
	// after it applied everything committed so far (a linearizable read
	// gives that head; appends that were in flight when the writers stopped
	// may have committed after the highest acknowledged one).
	var maxSeq uint64
	for seq := range acked {
		maxSeq = max(maxSeq, seq)
	}
	head, err := store.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{eventType}}}})
	if err != nil {
		t.Fatalf("linearizable read of the head: %v", err)
	}
	if head.CurrentContextVersion < maxSeq {
		t.Fatalf("linearizable read ends at #%d, before the acknowledged #%d", head.CurrentContextVersion, maxSeq)
	}
	maxSeq = head.CurrentContextVersion
	var logs [3][]contract.EventRecord
	for i, addr := range addrs {
		one, err := client.Dial(ctx, []string{addr}, append(sec, client.WithRetryTimeout(time.Minute))...)
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(contract.WithReadOptions(ctx,
			contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: maxSeq}), time.Minute)
		res, err := one.Query(rctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{eventType}}}})
		rcancel()
		_ = one.Close()
		if err != nil {
			t.Fatalf("local read on %s (%s): %v", services[i], addr, err)
		}
		logs[i] = res.Events
		got := map[uint64]string{}
		for _, e := range res.Events {
			got[e.SequenceNumber] = string(e.Payload)
		}
		missing := 0
		for seq, payload := range acked {
			if p, ok := got[seq]; !ok || !jsonEqual(p, payload) {
				if missing < 5 {
					t.Errorf("%s: acknowledged event #%d %s: got %q", services[i], seq, payload, p)
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged appends missing or different", services[i], missing, len(acked))
		}
		logStep("%s holds all %d acknowledged appends (%d events of the type in all)", services[i], len(acked), len(res.Events))
	}
	// The logs must agree position by position. They may differ in length
	// only by appends no client saw acknowledged: a call the appenders gave
	// up on when they stopped can still commit while the nodes are read one
	// after the other.
	for i := 1; i < 3; i++ {
		common := min(len(logs[i]), len(logs[0]))
		for _, l := range [][]contract.EventRecord{logs[0][common:], logs[i][common:]} {
			for _, e := range l {
				if e.SequenceNumber <= maxSeq {
					t.Errorf("%s has %d events, %s has %d, and #%d (acknowledged range) is on one only",
						services[i], len(logs[i]), services[0], len(logs[0]), e.SequenceNumber)
				}
			}
		}
		for j := range logs[0][:common] {
			a, b := logs[0][j], logs[i][j]
			if a.SequenceNumber != b.SequenceNumber || !jsonEqual(string(a.Payload), string(b.Payload)) {
				t.Errorf("%s and %s differ at position %d: #%d %s vs #%d %s", services[0], services[i], j,
					a.SequenceNumber, a.Payload, b.SequenceNumber, b.Payload)
				break
			}
		}
	}
}

// composeCommand finds Compose v2 (the docker compose plugin), or else
// docker-compose (Compose 1.29, what Debian's package provides).
func composeCommand(t *testing.T) []string {
	if _, err := run(context.Background(), 30*time.Second, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		if _, err := run(context.Background(), 30*time.Second, nil, p, "version"); err == nil {
			t.Logf("the docker compose plugin (Compose v2) is not installed; using %s", p)
			return []string{p}
		}
	}
	return nil
}

// buildImage does what `make image` does, under the given tag: a static
// binary built on the host, copied into an image FROM scratch.
// It returns the path of the binary, which runs on the host as well.
func buildImage(ctx context.Context, t *testing.T, tag string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"etc", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile(filepath.Join("image", "etc", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if out, err := runIn(ctx, "..", 10*time.Minute, env, goBin, "build", "-trimpath", "-ldflags", "-s -w -X main.version=composetest",
		"-o", filepath.Join(dir, "factstr-node"), "./cmd/factstr-node"); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := run(ctx, 5*time.Minute, env, "docker", "build", "-q", "-f", "Dockerfile", "-t", tag, dir); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "factstr-node")
}

// waitHealthy waits until some node reports a leader and voters healthy
// voters (and no other members), and returns the leader's id.
func waitHealthy(ctx context.Context, t *testing.T, c *client.Client, voters int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		for i := range services {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := c.AdminAt(i).Status(sctx, &factstrv1.StatusRequest{})
			cancel()
			if err != nil {
				last = fmt.Sprintf("%s: %v", services[i], err)
				continue
			}
			healthy := 0
			for _, m := range st.GetMembers() {
				if m.GetSuffrage() == "voter" && m.GetHealthy() {
					healthy++
				}
			}
			last = fmt.Sprintf("%s: leader %q, %d healthy voters of %d members", services[i], st.GetLeaderId(), healthy, len(st.GetMembers()))
			if st.GetLeaderId() != "" && healthy == voters && len(st.GetMembers()) == voters {
				return st.GetLeaderId()
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("cluster not healthy after %v; last status: %s", timeout, last)
	return ""
}

// waitLeader waits until the node behind admin knows a leader other than old.
func waitLeader(ctx context.Context, t *testing.T, admin factstrv1.AdminServiceClient, old string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := admin.Status(sctx, &factstrv1.StatusRequest{})
		cancel()
		if err == nil && st.GetLeaderId() != "" && st.GetLeaderId() != old {
			return st.GetLeaderId()
		}
		last = fmt.Sprint(st.GetLeaderId(), err)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no new leader after %v (last: %s)", timeout, last)
	return ""
}

// appenders append single events concurrently and remember the
// acknowledged ones.
type appenders struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	acked    map[uint64]string
	failures int
}

func newAppenders(ctx context.Context, store contract.EventStore, n int) *appenders {
	ctx, cancel := context.WithCancel(ctx)
	a := &appenders{cancel: cancel, acked: map[uint64]string{}}
	for w := range n {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				payload := fmt.Sprintf(`{"writer":%d,"n":%d}`, w, i)
				actx, acancel := context.WithTimeout(ctx, 45*time.Second)
				res, err := store.Append(actx, []contract.NewEvent{{Type: eventType, Payload: json.RawMessage(payload)}})
				acancel()
				a.mu.Lock()
				if err == nil {
					a.acked[res.FirstSequenceNumber] = payload
				} else if ctx.Err() == nil {
					a.failures++
				}
				a.mu.Unlock()
				if err != nil && ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	return a
}

func (a *appenders) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *appenders) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for a.count() < n {
		if time.Now().After(deadline) {
			a.mu.Lock()
			f := a.failures
			a.mu.Unlock()
			t.Fatalf("only %d of %d appends acknowledged after %v (%d failed calls)", a.count(), n, timeout, f)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *appenders) stop() (map[uint64]string, int) {
	a.cancel()
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked, a.failures
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	return runIn(ctx, "", timeout, env, name, args...)
}

func runIn(ctx context.Context, dir string, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s %s: timed out after %v: %w", name, strings.Join(args, " "), timeout, err)
	}
	return out.String(), err
}

// clientSecurity are a client's options against the compose cluster: TLS
// verified against the key's CA (what `factstr-node ca-cert` prints) and
// the token.
// checkHTTPStatus asks url for the node's status over HTTPS, verified with
// the cluster key's CA: refused without the token, answered with it.
func checkHTTPStatus(ctx context.Context, t *testing.T, key, token, url, node string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(t, key)}}
	get := func(withToken bool) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if withToken {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	if code, body := get(false); code != http.StatusUnauthorized {
		t.Fatalf("GET %s without a token: %d, want 401: %s", url, code, body)
	}
	code, body := get(true)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d, want 200: %s", url, code, body)
	}
	var st struct {
		NodeID   string `json:"node_id"`
		LeaderID string `json:"leader_id"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.NodeID != node || st.LeaderID == "" {
		t.Fatalf("GET %s: node %q, leader %q (%v), want node %q and a leader: %s", url, st.NodeID, st.LeaderID, err, node, body)
	}
}

func clientSecurity(t *testing.T, key, token string) []client.Option {
	t.Helper()
	return []client.Option{client.WithTLS(clientTLS(t, key)), client.WithToken(token)}
}

// clientTLS trusts the CA derived from the cluster key, as an operator's
// client does with the CA that 'factstr-node ca-cert' prints.
func clientTLS(t *testing.T, key string) *tls.Config {
	t.Helper()
	k, err := clusterkey.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := k.CA()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
}
