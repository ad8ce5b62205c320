//go:build unix

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/clusterkey"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// keyedCluster is three factstr-node processes on loopback started with a
// cluster key and an auth file of one token per role.
type keyedCluster struct {
	dir                       string
	key                       string
	ca                        *clusterkey.CA
	addrs, raftAddrs, gossips []string
	logs                      []string
}

var roleTokens = map[string]string{
	"reader": "reader-token-7d0f1a",
	"writer": "writer-token-91c2e4",
	"admin":  "admin-token-5b8e03a",
}

func startKeyedCluster(t *testing.T) *keyedCluster {
	t.Helper()
	bin := testcluster.Build(t)
	k := &keyedCluster{dir: t.TempDir(), key: clusterkey.Generate()}
	parsed, err := clusterkey.Parse(k.key)
	if err != nil {
		t.Fatal(err)
	}
	if k.ca, err = parsed.CA(); err != nil {
		t.Fatal(err)
	}
	var creds []map[string]string
	for role, tok := range roleTokens {
		creds = append(creds, map[string]string{"name": role + "-app", "token": tok, "role": role})
	}
	authFile := filepath.Join(k.dir, "auth.json")
	b, _ := json.Marshal(creds)
	if err := os.WriteFile(authFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		var p [3]int
		for j := range p {
			if p[j], err = freeport.Get(j == 2); err != nil {
				t.Fatal(err)
			}
		}
		k.addrs = append(k.addrs, fmt.Sprintf("127.0.0.1:%d", p[0]))
		k.raftAddrs = append(k.raftAddrs, fmt.Sprintf("127.0.0.1:%d", p[1]))
		k.gossips = append(k.gossips, fmt.Sprintf("127.0.0.1:%d", p[2]))
	}
	for i := range 3 {
		var join []string
		for j, g := range k.gossips {
			if j != i {
				join = append(join, g)
			}
		}
		id := fmt.Sprintf("k%d", i+1)
		cmd := exec.Command(bin, append([]string{"serve", "--node-id", id, "--data-dir", filepath.Join(k.dir, id),
			"--grpc-addr", k.addrs[i], "--raft-addr", k.raftAddrs[i], "--gossip-addr", k.gossips[i],
			"--bootstrap-expect", "3", "--join", strings.Join(join, ","), "--auth-file", authFile}, testcluster.FastRaftArgs...)...)
		// The key through the environment, as deployments pass it.
		cmd.Env = append(testcluster.CleanEnv(), "FACTSTR_CLUSTER_KEY="+k.key)
		logPath := filepath.Join(k.dir, id+".log")
		k.logs = append(k.logs, logPath)
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if _, err := testcluster.Spawn(t, id, cmd); err != nil {
			t.Fatal(err)
		}
		logf.Close()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range k.logs {
				t.Logf("---- last 40 lines of k%d ----\n%s", i+1, tailFile(l, 40))
			}
		}
	})
	return k
}

// clientTLS verifies the nodes against the cluster CA, as a client given
// `factstr-node ca-cert` as --tls-ca does.
func (k *keyedCluster) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: k.ca.Pool(), MinVersion: tls.VersionTLS12}
}

func (k *keyedCluster) client(t *testing.T, role string, addrs ...string) *client.Client {
	t.Helper()
	if len(addrs) == 0 {
		addrs = k.addrs
	}
	opts := []client.Option{client.WithTLS(k.clientTLS()), client.WithRetryTimeout(45 * time.Second)}
	if role != "" {
		opts = append(opts, client.WithToken(roleTokens[role]))
	}
	c, err := client.Dial(context.Background(), addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterKey replays findings 2, 3 and 4 of the hardening issue
// against three processes started with a cluster key and role tokens: a
// forged AppendEntries on the Raft port, an outsider joining by gossip,
// client tokens on the peer service, and roles on the client API.
func TestClusterKey(t *testing.T) {
	skipShort(t)
	k := startKeyedCluster(t)
	admin := k.client(t, "admin")

	// Appends through every node: the followers forward to the leader over
	// the peer service with their cluster certificates.
	for i, addr := range k.addrs {
		w := k.client(t, "writer", addr)
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		r, err := w.Append(ctx, []contract.NewEvent{ev("keyed", fmt.Sprintf(`{"via":%d}`, i))})
		cancel()
		if err != nil || r.CommittedCount != 1 {
			t.Fatalf("append through k%d: %+v, %v", i+1, r, err)
		}
	}
	ctx := testCtx(t, 3*time.Minute)
	before, err := admin.AdminAt(0).Status(ctx, &factstrv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(voters(before)) != 3 || before.GetLeaderId() == "" {
		t.Fatalf("cluster not formed: %s", describeMembers(before))
	}

	t.Run("roles", func(t *testing.T) {
		reader, writer := k.client(t, "reader"), k.client(t, "writer")
		if _, err := reader.Query(ctx, contract.EventQuery{}); err != nil {
			t.Fatalf("reader query: %v", err)
		}
		if _, err := reader.AdminAt(0).Status(ctx, &factstrv1.StatusRequest{}); err != nil {
			t.Fatalf("reader status: %v", err)
		}
		_, err := reader.Append(ctx, []contract.NewEvent{ev("keyed", `{"by":"reader"}`)})
		wantCode(t, "reader appends", err, codes.PermissionDenied)
		_, err = writer.AdminAt(0).Remove(ctx, &factstrv1.RemoveRequest{NodeId: "k3"})
		wantCode(t, "writer removes a node", err, codes.PermissionDenied)
		_, err = writer.AdminAt(0).TransferLeadership(ctx, &factstrv1.TransferLeadershipRequest{})
		wantCode(t, "writer transfers leadership", err, codes.PermissionDenied)
		anon := k.client(t, "", k.addrs[0])
		_, err = anon.Query(ctx, contract.EventQuery{})
		wantCode(t, "no token queries", err, codes.Unauthenticated)
	})

	t.Run("client tokens on the peer service", func(t *testing.T) {
		// A client that trusts the CA and holds a token, but has no node
		// certificate; and one with a node certificate of another cluster.
		otherKey, _ := clusterkey.Parse(clusterkey.Generate())
		otherCA, _ := otherKey.CA()
		foreign, err := otherCA.Issue("k9", nil, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		withForeign := k.clientTLS()
		withForeign.Certificates = []tls.Certificate{*foreign}
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
			want codes.Code
		}{
			{"token only", k.clientTLS(), codes.PermissionDenied},
			// A certificate presented must verify: the handshake fails.
			{"another cluster's node certificate", withForeign, codes.Unavailable},
		} {
			conn, err := grpc.NewClient(k.addrs[0], grpc.WithTransportCredentials(credentials.NewTLS(tc.cfg)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			peer := peerv1.NewPeerServiceClient(conn)
			for role, tok := range roleTokens {
				cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), 10*time.Second)
				_, err := peer.Forward(cctx, &peerv1.ForwardRequest{})
				wantCode(t, tc.name+", "+role+" token forwards", err, tc.want)
				_, err = peer.RemoveServer(cctx, &peerv1.RemoveServerRequest{})
				wantCode(t, tc.name+", "+role+" token removes a server", err, tc.want)
				// The batched forwarding stream, as the followers use it.
				if st, err := peer.ForwardStream(cctx); err != nil {
					wantCode(t, tc.name+", "+role+" token opens a forward stream", err, tc.want)
				} else {
					_, err = st.Recv()
					wantCode(t, tc.name+", "+role+" token opens a forward stream", err, tc.want)
				}
				cancel()
			}
		}
	})

	t.Run("forged AppendEntries", func(t *testing.T) {
		// The attack of finding 2: hashicorp/raft's own transport, no
		// certificate, term 100, leader "evil".
		attacker, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer attacker.Close()
		for i, addr := range k.raftAddrs {
			req := &raft.AppendEntriesRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("evil"), Addr: []byte(attacker.LocalAddr())},
				Term:      100, Leader: []byte(attacker.LocalAddr()),
				PrevLogEntry: before.GetCommitIndex(), PrevLogTerm: before.GetTerm(),
				Entries:           []*raft.Log{{Index: before.GetCommitIndex() + 1, Term: 100, Type: raft.LogCommand, Data: []byte("forged")}},
				LeaderCommitIndex: before.GetCommitIndex() + 1,
			}
			var resp raft.AppendEntriesResponse
			err := attacker.AppendEntries(raft.ServerID(fmt.Sprintf("k%d", i+1)), raft.ServerAddress(addr), req, &resp)
			if err == nil {
				t.Fatalf("k%d answered the forged AppendEntries: %+v", i+1, resp)
			}
			t.Logf("k%d refused the forged AppendEntries: %v", i+1, err)
		}
		// The refusal is logged; then no node's term moved or follows evil.
		waitFor(t, 20*time.Second, func() bool { return anyLogHas(k.logs, "refused Raft connection") != "" },
			func() string { return `"refused Raft connection" in a node's log` })
		after, err := admin.AdminAt(0).Status(ctx, &factstrv1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if after.GetTerm() != before.GetTerm() || after.GetLeaderId() != before.GetLeaderId() {
			t.Fatalf("term %d -> %d, leader %q -> %q after the forged AppendEntries",
				before.GetTerm(), after.GetTerm(), before.GetLeaderId(), after.GetLeaderId())
		}
		for _, m := range after.GetMembers() {
			if m.GetTerm() >= 100 {
				t.Fatalf("member %s is at term %d", m.GetId(), m.GetTerm())
			}
		}
	})

	t.Run("outsiders cannot join", func(t *testing.T) {
		// One process without a key, one with another cluster's key, both
		// told to join: gossip refuses them, so they are never added.
		noKey := startExtraNode(t, k.dir, "nokey", "--join", k.gossips[0])
		otherKey := clusterkey.Generate()
		wrongKey := startExtraNode(t, k.dir, "wrongkey", "--join", k.gossips[1], "--cluster-key", otherKey)
		waitFor(t, 30*time.Second, func() bool {
			return anyLogHas([]string{noKey.logPath}, "join") != "" && anyLogHas([]string{wrongKey.logPath}, "join") != "" &&
				anyLogHas(k.logs, "ncrypt") != ""
		}, func() string {
			return "the outsiders' join attempts and a node's gossip encryption refusal in the logs"
		})
		t.Logf("refusal: %s", anyLogHas(k.logs, "ncrypt"))
		time.Sleep(3 * time.Second) // past PromoteAfter (2s): a joined node would be a voter by now
		st, err := admin.AdminAt(0).Status(ctx, &factstrv1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.GetMembers() {
			if m.GetId() == "nokey" || m.GetId() == "wrongkey" {
				t.Fatalf("outsider %s is a member: %s", m.GetId(), describeMembers(st))
			}
		}
		if v := voters(st); !slices.Equal(v, []string{"k1", "k2", "k3"}) {
			t.Fatalf("voters %v, want k1 k2 k3", v)
		}
	})

	t.Run("healthcheck with the node's key", func(t *testing.T) {
		if _, stderr, code := cli(t, ctx, 30*time.Second, "healthcheck", "--addr", k.addrs[1], "--cluster-key", k.key); code != 0 {
			t.Fatalf("healthcheck with the key: exit %d, %s", code, stderr)
		}
		if _, _, code := cli(t, ctx, 30*time.Second, "healthcheck", "--addr", k.addrs[1], "--timeout", "1s"); code == 0 {
			t.Fatal("a plaintext healthcheck passed against a TLS port")
		}
	})

	t.Run("client commands inside a node's environment", func(t *testing.T) {
		// kubectl exec factstr-0 -- factstr-node status: the pod has the
		// key and the token in its environment.
		status := func(env ...string) error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, testcluster.Build(t), "status", "--addr", k.addrs[0], "--timeout", "5s")
			cmd.Env = append(testcluster.CleanEnv(), env...)
			out, err := cmd.CombinedOutput()
			t.Logf("status with %d variables: %v\n%s", len(env), err, out)
			return err
		}
		if err := status("FACTSTR_CLUSTER_KEY="+k.key, "FACTSTR_TOKEN="+roleTokens["reader"]); err != nil {
			t.Fatalf("status with the node's key and a token: %v", err)
		}
		if err := status("FACTSTR_TOKEN=" + roleTokens["reader"]); err == nil {
			t.Fatal("status in the clear against the TLS port succeeded")
		}
	})

	t.Run("ca-cert prints the CA clients verify", func(t *testing.T) {
		out, stderr, code := cli(t, ctx, 30*time.Second, "ca-cert", "--cluster-key", k.key)
		if code != 0 || out != string(k.ca.PEM()) {
			t.Fatalf("ca-cert: exit %d, %q (stderr %q); want the derived CA", code, out, stderr)
		}
	})
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, want)
	}
	got := status.Code(err)
	if got != want {
		if u := errors.Unwrap(err); u != nil {
			got = status.Code(u)
		}
	}
	if got != want {
		t.Fatalf("%s: %v (code %v), want %v", what, err, status.Code(err), want)
	}
}

func anyLogHas(paths []string, s string) string {
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		for l := range strings.Lines(string(b)) {
			if strings.Contains(l, s) {
				return strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// TestExposedWithoutKeyRefusesToStart: a node told to bind beyond loopback
// without the security flags exits at once with one line naming what is
// missing, before it listens on anything.
func TestExposedWithoutKeyRefusesToStart(t *testing.T) {
	skipShort(t)
	ctx := testCtx(t, 2*time.Minute)
	key := clusterkey.Generate()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wildcard gRPC, nothing", []string{"--grpc-addr", "0.0.0.0:0"}, "--grpc-addr 0.0.0.0:0 is not a loopback address and --cluster-key is missing"},
		{"wildcard Raft, nothing", []string{"--raft-addr", ":0"}, "--raft-addr :0 is not a loopback address and --cluster-key is missing"},
		{"wildcard gossip, partial TLS", []string{"--gossip-addr", "0.0.0.0:0", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
			"--tls-ca, --raft-tls, --gossip-key is missing"},
		{"key but no client auth", []string{"--grpc-addr", "0.0.0.0:0", "--cluster-key", key}, "--token or --auth-file is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data")}, tc.args...)
			stdout, stderr, code := cli(t, ctx, 30*time.Second, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1 (stdout %q, stderr %q)", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(last, tc.want) || !strings.Contains(last, "refusing to start") {
				t.Fatalf("last stderr line %q, want it to say %q", last, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Fatal("the refused node created its data directory")
			}
		})
	}
}
