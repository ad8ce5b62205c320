package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/internal/testpki"
	"github.com/factstr/factstr-go/memstore"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "acked")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReadAcked: the acknowledged-appends file is "seq payload" lines; a
// sequence number acknowledged twice for different events is a finding in
// itself, and a malformed number is an error naming the file.
func TestReadAcked(t *testing.T) {
	tests := []struct {
		name, content string
		want          map[uint64]string
		err           string
	}{
		{"empty", "", map[uint64]string{}, ""},
		{"lines", "1 {\"n\":0}\n7 {\"n\": 1, \"s\":\"a b\"}\n", map[uint64]string{1: `{"n":0}`, 7: `{"n": 1, "s":"a b"}`}, ""},
		{"no final newline", "3 {}", map[uint64]string{3: `{}`}, ""},
		{"line without a payload is skipped", "5\n6 {}\n", map[uint64]string{6: `{}`}, ""},
		{"same event twice", "2 {\"a\":1}\n2 {\"a\":1}\n", map[uint64]string{2: `{"a":1}`}, ""},
		{"two events for one number", "2 {\"a\":1}\n2 {\"a\":2}\n", nil, `sequence number 2 acknowledged twice, for {"a":1} and {"a":2}`},
		{"bad number", "x1 {}\n", nil, `"x1 {}": strconv.ParseUint`},
		{"negative number", "-1 {}\n", nil, `"-1 {}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.content)
			got, err := readAcked(p)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("readAcked = %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("readAcked = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := readAcked(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

// TestSameJSON: payloads compare as JSON values (the server may re-encode
// them), anything else byte for byte.
func TestSameJSON(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":"x"}`, `{"b":"x","a":1}`, true},
		{`{"a": 1}`, "{\n\"a\":1\n}", true},
		{`{"a":1.50}`, `{"a":1.5}`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":1}`, `{"a":1,"b":null}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`not json`, `not json`, true},
		{`not json`, `not  json`, false},
		{`{"a":1}`, `not json`, false},
		{``, ``, true},
	}
	for _, tt := range tests {
		if got := sameJSON(tt.a, tt.b); got != tt.want {
			t.Errorf("sameJSON(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSameEvents(t *testing.T) {
	rec := func(seq uint64, typ, payload string) contract.EventRecord {
		return contract.EventRecord{SequenceNumber: seq, Type: typ, Payload: json.RawMessage(payload)}
	}
	a := []contract.EventRecord{rec(1, "e2e", `{"n":1}`), rec(2, "e2e", `{"n":2}`)}
	tests := []struct {
		name string
		b    []contract.EventRecord
		want bool
	}{
		{"equal", []contract.EventRecord{rec(1, "e2e", `{"n":1}`), rec(2, "e2e", `{"n":2}`)}, true},
		{"payload re-encoded", []contract.EventRecord{rec(1, "e2e", `{ "n": 1 }`), rec(2, "e2e", `{"n":2}`)}, true},
		{"other time", []contract.EventRecord{{SequenceNumber: 1, Type: "e2e", Payload: json.RawMessage(`{"n":1}`), OccurredAt: time.Now()}, rec(2, "e2e", `{"n":2}`)}, true},
		{"one missing", a[:1], false},
		{"one more", append(append([]contract.EventRecord{}, a...), rec(3, "e2e", `{}`)), false},
		{"other sequence number", []contract.EventRecord{rec(1, "e2e", `{"n":1}`), rec(3, "e2e", `{"n":2}`)}, false},
		{"other type", []contract.EventRecord{rec(1, "e2e", `{"n":1}`), rec(2, "x", `{"n":2}`)}, false},
		{"other payload", []contract.EventRecord{rec(1, "e2e", `{"n":1}`), rec(2, "e2e", `{"n":3}`)}, false},
		{"other order", []contract.EventRecord{a[1], a[0]}, false},
	}
	for _, tt := range tests {
		if got := sameEvents(a, tt.b); got != tt.want {
			t.Errorf("%s: sameEvents = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSecurityOptions: FACTSTR_TLS_CA must name a readable PEM
// certificate; each setting adds its option.
func TestSecurityOptions(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca").WriteCA(t, dir, "ca.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ca, token string
		n         int
		err       string
	}{
		{"", "", 0, ""},
		{"", "tok", 1, ""},
		{ca, "", 1, ""},
		{ca, "tok", 2, ""},
		{filepath.Join(dir, "missing.pem"), "", 0, "FACTSTR_TLS_CA: open "},
		{notPEM, "tok", 0, "FACTSTR_TLS_CA holds no PEM certificate"},
	}
	for _, tt := range tests {
		opts, err := securityOptions(tt.ca, tt.token)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("securityOptions(%q, %q) = %v, want error %q", tt.ca, tt.token, err, tt.err)
			}
			continue
		}
		if err != nil || len(opts) != tt.n {
			t.Errorf("securityOptions(%q, %q) = %d options, %v; want %d", tt.ca, tt.token, len(opts), err, tt.n)
		}
	}
}

// TestCommandsNeedTheirFlags: each command says which flags it lacks
// before it connects anywhere.
func TestCommandsNeedTheirFlags(t *testing.T) {
	ctx := testCtx(t)
	p := filepath.Join(t.TempDir(), "acked")
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"load, nothing", func() error { return load(ctx, nil) }, "load needs --targets and --acked"},
		{"load, no file", func() error { return load(ctx, []string{"--targets", "127.0.0.1:1"}) }, "load needs --targets and --acked"},
		{"load, no targets", func() error { return load(ctx, []string{"--acked", p}) }, "load needs --targets and --acked"},
		{"verify, nothing", func() error { return verify(ctx, nil) }, "verify needs --targets and --acked"},
		{"verify, no targets", func() error { return verify(ctx, []string{"--acked", p}) }, "verify needs --targets and --acked"},
		{"verify, no file", func() error { return verify(ctx, []string{"--targets", "127.0.0.1:1", "--acked", p}) }, "no such file"},
		{"verify, nothing acknowledged", func() error {
			return verify(ctx, []string{"--targets", "127.0.0.1:1", "--acked", writeFile(t, "")})
		}, "no acknowledged appends to verify"},
		{"cluster, nothing", func() error { return cluster(ctx, nil, io.Discard) }, "cluster needs --targets"},
	}
	for _, tt := range tests {
		if err := tt.run(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// serveStore serves a memstore over the real EventStoreService on loopback
// (with the production codec and any extra server options) and returns its
// address and the store.
func serveStore(t *testing.T, opts ...grpc.ServerOption) (string, *memstore.Store) {
	t.Helper()
	store := memstore.New()
	t.Cleanup(func() { _ = store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := testgrpc.Serve(t, func(srv *grpc.Server) { server.NewEventStore(store, log).Register(srv) },
		append([]grpc.ServerOption{server.CodecOption()}, opts...)...)
	return addr, store
}

func noSecurity(t *testing.T) {
	t.Setenv("FACTSTR_TLS_CA", "")
	t.Setenv("FACTSTR_TOKEN", "")
}

func ackedLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestLoadThenVerify runs the two commands as e2e.sh does, against a real
// gRPC server: load records exactly the acknowledged appends, verify
// passes on the node that holds them and fails when an acknowledged
// append is missing or changed, when a node is behind, or when two nodes
// hold different logs.
func TestLoadThenVerify(t *testing.T) {
	noSecurity(t)
	ctx := testCtx(t)
	addr, store := serveStore(t)
	acked := filepath.Join(t.TempDir(), "acked")

	if err := load(ctx, []string{"--targets", addr, "--acked", acked, "--count", "20", "--writers", "3", "--tag", "unit"}); err != nil {
		t.Fatal(err)
	}
	lines := ackedLines(t, acked)
	if len(lines) < 20 {
		t.Fatalf("%d acknowledged appends recorded, want at least 20", len(lines))
	}
	// Every recorded line is an event the store holds under that number.
	res, err := store.Query(ctx, contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[uint64]contract.EventRecord{}
	for _, e := range res.Events {
		held[e.SequenceNumber] = e
	}
	for _, l := range lines {
		seq, payload, _ := strings.Cut(l, " ")
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		e, ok := held[n]
		if !ok || e.Type != eventType || !sameJSON(string(e.Payload), payload) || !strings.Contains(payload, `"tag":"unit"`) {
			t.Fatalf("line %q: the store holds %+v", l, e)
		}
	}

	verifyArgs := func(targets, path string) []string { return []string{"--targets", targets, "--acked", path} }
	if err := verify(ctx, verifyArgs(addr, acked)); err != nil {
		t.Fatalf("verify of what load wrote: %v", err)
	}
	// Each target is read alone: the same node twice agrees with itself.
	if err := verify(ctx, verifyArgs(addr+","+addr, acked)); err != nil {
		t.Fatalf("verify of one node twice: %v", err)
	}

	t.Run("an acknowledged append changed", func(t *testing.T) {
		changed := append([]string{}, lines...)
		seq, _, _ := strings.Cut(changed[0], " ")
		changed[0] = seq + ` {"tag":"forged"}`
		err := verify(ctx, verifyArgs(addr, writeFile(t, strings.Join(changed, "\n")+"\n")))
		if err == nil || !strings.Contains(err.Error(), "1 of "+strconv.Itoa(len(lines))+" acknowledged appends missing or changed") {
			t.Fatalf("verify: %v", err)
		}
	})
	t.Run("the node is behind an acknowledged append", func(t *testing.T) {
		late := fmt.Sprintf("%d {\"tag\":\"late\"}\n", res.CurrentContextVersion+5)
		err := verify(ctx, verifyArgs(addr, writeFile(t, strings.Join(lines, "\n")+"\n"+late)))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("before the acknowledged #%d", res.CurrentContextVersion+5)) {
			t.Fatalf("verify: %v", err)
		}
	})
	t.Run("two nodes differ", func(t *testing.T) {
		// A second node with the same events and one more: it holds every
		// acknowledged append, but its log is not the first node's.
		addr2, store2 := serveStore(t)
		for _, e := range res.Events {
			if _, err := store2.Append(ctx, []contract.NewEvent{{Type: e.Type, Payload: e.Payload}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store2.Append(ctx, []contract.NewEvent{{Type: eventType, Payload: json.RawMessage(`{"extra":1}`)}}); err != nil {
			t.Fatal(err)
		}
		err := verify(ctx, verifyArgs(addr+","+addr2, acked))
		if err == nil || !strings.Contains(err.Error(), "or they differ") || strings.Contains(err.Error(), "missing or changed") {
			t.Fatalf("verify: %v", err)
		}
	})
}

// TestLoadAndVerifyWithTLSAndToken: the commands reach nodes that require
// TLS (verified against FACTSTR_TLS_CA) and a token (FACTSTR_TOKEN); without
// the token the node refuses verify's read.
func TestLoadAndVerifyWithTLSAndToken(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	t.Setenv("FACTSTR_TLS_CA", ca.WriteCA(t, dir, "ca.pem"))
	t.Setenv("FACTSTR_TOKEN", "writer-token-0123")
	auth, err := server.AuthInterceptors(server.AuthConfig{Tokens: []server.Credential{{Name: "w", Token: "writer-token-0123", Role: "writer"}}})
	if err != nil {
		t.Fatal(err)
	}
	creds := grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "node")}, MinVersion: tls.VersionTLS12}))
	addr, _ := serveStore(t, append(auth, creds)...)
	acked := filepath.Join(dir, "acked")
	if err := load(ctx, []string{"--targets", addr, "--acked", acked, "--count", "5", "--writers", "1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(ackedLines(t, acked)); n != 5 {
		t.Fatalf("one writer, --count 5: %d acknowledged appends recorded", n)
	}
	if err := verify(ctx, []string{"--targets", addr, "--acked", acked}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	t.Setenv("FACTSTR_TOKEN", "")
	if err := verify(ctx, []string{"--targets", addr, "--acked", acked}); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("verify without the token: %v, want Unauthenticated", err)
	}
}

// statusAdmin answers Status with a fixed response.
type statusAdmin struct {
	factstrv1.UnimplementedAdminServiceServer
	st *factstrv1.StatusResponse
}

func (a statusAdmin) Status(context.Context, *factstrv1.StatusRequest) (*factstrv1.StatusResponse, error) {
	return a.st, nil
}

// TestCluster: cluster prints the leader only when every target names the
// same one and reports the wanted number of healthy voters, each at its
// pod's Raft address.
func TestCluster(t *testing.T) {
	noSecurity(t)
	const suffix = ".factstr-headless.ns.svc.cluster.local:7401"
	member := func(id, suffrage string, healthy bool) *factstrv1.Member {
		return &factstrv1.Member{Id: id, RaftAddr: id + suffix, Suffrage: suffrage, Healthy: healthy}
	}
	healthy3 := func() []*factstrv1.Member {
		return []*factstrv1.Member{member("f0", "voter", true), member("f1", "voter", true), member("f2", "voter", true)}
	}
	st := func(leader string, members []*factstrv1.Member) *factstrv1.StatusResponse {
		return &factstrv1.StatusResponse{LeaderId: leader, Members: members}
	}
	wrongAddr := healthy3()
	wrongAddr[2].RaftAddr = "10.244.0.7:7401"
	unhealthy := healthy3()
	unhealthy[1].Healthy = false
	learner := healthy3()
	learner[2].Suffrage = "nonvoter"
	tests := []struct {
		name     string
		statuses []*factstrv1.StatusResponse // one node per status; nil: no AdminService
		args     []string
		want     string // printed leader, or the error
	}{
		{"all agree", []*factstrv1.StatusResponse{st("f1", healthy3()), st("f1", healthy3()), st("f1", healthy3())}, nil, "f1\n"},
		{"no suffix check", []*factstrv1.StatusResponse{st("f2", wrongAddr)}, []string{"--raft-suffix", ""}, "f2\n"},
		{"one voter wanted", []*factstrv1.StatusResponse{st("f0", healthy3()[:1])}, []string{"--voters", "1"}, "f0\n"},
		{"no leader", []*factstrv1.StatusResponse{st("", healthy3())}, nil, `leader "" (others: "")`},
		{"leaders differ", []*factstrv1.StatusResponse{st("f1", healthy3()), st("f2", healthy3())}, nil, `leader "f2" (others: "f1")`},
		{"Raft address not the pod's", []*factstrv1.StatusResponse{st("f1", wrongAddr)}, nil, `member f2 has Raft address "10.244.0.7:7401", want "f2` + suffix + `"`},
		{"an unhealthy voter", []*factstrv1.StatusResponse{st("f1", healthy3()), st("f1", unhealthy)}, nil, "2 healthy voters of 3 members, want 3"},
		{"a non-voter", []*factstrv1.StatusResponse{st("f1", learner)}, nil, "2 healthy voters of 3 members, want 3"},
		{"a member too many", []*factstrv1.StatusResponse{st("f1", append(healthy3(), member("f3", "nonvoter", true)))}, nil, "3 healthy voters of 4 members, want 3"},
		{"status fails", []*factstrv1.StatusResponse{nil}, nil, "status: rpc error: code = Unimplemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var targets []string
			for _, s := range tt.statuses {
				targets = append(targets, testgrpc.Serve(t, func(srv *grpc.Server) {
					if s != nil {
						factstrv1.RegisterAdminServiceServer(srv, statusAdmin{st: s})
					}
				}))
			}
			args := append([]string{"--targets", strings.Join(targets, ","), "--raft-suffix", suffix}, tt.args...)
			var out bytes.Buffer
			err := cluster(testCtx(t), args, &out)
			if strings.HasSuffix(tt.want, "\n") {
				if err != nil || out.String() != tt.want {
					t.Fatalf("cluster = %q, %v; want %q", out.String(), err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || out.Len() != 0 {
				t.Fatalf("cluster = %q, %v; want error %q and no output", out.String(), err, tt.want)
			}
		})
	}
}

// TestLoadStopsOnSignal: without --count, load runs until its context ends
// (SIGINT/SIGTERM in main) and has recorded only acknowledged appends.
func TestLoadStopsOnSignal(t *testing.T) {
	noSecurity(t)
	addr, store := serveStore(t)
	acked := filepath.Join(t.TempDir(), "acked")
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	// Let ten appends commit, then "signal". Each writer appends again
	// only after it recorded its previous append, so of ten committed
	// appends of two writers at least eight are recorded by then.
	committed := make(chan struct{})
	var seen int
	sub, err := store.StreamAll(ctx, func(_ context.Context, batch []contract.EventRecord) error {
		if seen += len(batch); seen >= 10 && seen-len(batch) < 10 {
			close(committed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	go func() { done <- load(ctx, []string{"--targets", addr, "--acked", acked, "--writers", "2"}) }()
	select {
	case <-committed:
	case <-time.After(10 * time.Second):
		t.Fatal("fewer than 10 appends committed within 10s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("load: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("load did not stop within 10s of its context ending")
	}
	got, err := readAcked(acked)
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Query(context.Background(), contract.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 8 || len(got) > len(res.Events) {
		t.Fatalf("%d recorded, %d in the store; want at least 8, at most all", len(got), len(res.Events))
	}
	stored := map[uint64]string{}
	for _, e := range res.Events {
		stored[e.SequenceNumber] = string(e.Payload)
	}
	for seq, p := range got {
		if sp, ok := stored[seq]; !ok || !sameJSON(p, sp) {
			t.Fatalf("#%d recorded as %s, stored as %q", seq, p, sp)
		}
	}
}
