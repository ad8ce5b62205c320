//go:build unix

package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/testcluster"
)

// TestConsoleOnCluster opens the console of one node of a real 3-node
// cluster (factstr-node processes serving the HTTP API) in headless
// Chromium and checks what an operator would look at: the members and the
// leader, the query form's results for events appended through the API,
// the live tail receiving an append made after it started, the append
// form's result and conflict, after the leader is killed the new leader
// and the dead node shown unreachable, and at last the page's own node
// down.
func TestConsoleOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and a browser; skipped with -short")
	}
	chromiumPath(t) // skip (or fail in CI) before starting any process
	const (
		nodes     = 3
		pageWait  = 20 * time.Second
		electWait = 45 * time.Second
	)
	const (
		reader = "console-reader-token-0123456789"
		writer = "console-writer-token-0123456789"
		admin  = "console-admin-token-01234567890" // the harness's own calls
	)
	authFile := filepath.Join(t.TempDir(), "auth.json")
	b, err := json.Marshal([]map[string]string{
		{"name": "r", "token": reader, "role": "reader"},
		{"name": "w", "token": writer, "role": "writer"},
		{"name": "a", "token": admin, "role": "admin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Each node serves HTTP on its own port.
	c := testcluster.Start(t, testcluster.Options{Nodes: nodes, Args: []string{"--auth-file", authFile}, Token: admin})
	ctx, cancel := context.WithTimeout(context.Background(), electWait)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The console is opened on a follower, so that it survives the kill of
	// the leader below and has to show the failover.
	viewer, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldLeaderID := c.Node(leader).ID()
	api := c.Node(viewer).HTTPURL()
	t.Logf("console of %s at %s/; leader %s", c.Node(viewer).ID(), api, oldLeaderID)

	p := openBrowser(t)
	p.do("open the console", chromedp.Navigate(api+"/"))

	// Without a token the node refuses the data, and the page says why.
	p.waitContains("#auth-message", "401 Unauthorized (GET /v1/status)", pageWait)
	p.shot("no-token")
	useToken(p, reader)

	// Overview: three members, all reachable, the cluster's leader.
	p.waitContains("#ov-member-count", fmt.Sprintf("%d members, %d reachable", nodes, nodes), pageWait)
	p.waitText("#ov-leader-id", "the leader "+oldLeaderID, pageWait, func(s string) bool { return s == oldLeaderID })
	if got := p.text(`[data-testid="member-` + oldLeaderID + `"] .m-role`); got != "leader" {
		t.Errorf("leader row of %s shows role %q", oldLeaderID, got)
	}
	p.waitText("#ov-warnings", "no warnings on a healthy cluster", pageWait, func(s string) bool { return s == "none" })
	p.shot("overview-3-members")

	// Query: events appended through the HTTP API, the big number exact.
	var last uint64
	for i := 1; i <= 2; i++ {
		r := appendEvent(t, api, writer, fmt.Sprintf(`{"events":[{"type":"console-test","payload":{"i":%d,"big":12345678901234567890}}]}`, i))
		last = r.Last
	}
	p.tab("query")
	p.set("q-types", "console-test")
	p.click("q-run")
	p.waitContains("#q-context-version", fmt.Sprint(last), pageWait)
	if got := p.text("#q-count"); got != "2" {
		t.Errorf("query shows %q events, want 2", got)
	}
	if got := p.text("#q-last-returned"); got != fmt.Sprint(last) {
		t.Errorf("last returned sequence shows %q, want %d", got, last)
	}
	events := p.text("#q-events tbody")
	for _, want := range []string{`"i": 1`, `"i": 2`, `"big": 12345678901234567890`, "console-test"} {
		if !strings.Contains(events, want) {
			t.Errorf("query result lacks %q:\n%s", want, events)
		}
	}
	p.shot("query")

	// Live tail: started first, then an append through the API.
	p.tab("tail")
	p.set("t-types", "console-test")
	p.click("t-start")
	p.waitContains("#t-state", "live", pageWait)
	tailed := appendEvent(t, api, writer, `{"events":[{"type":"console-test","payload":{"tail":"after-start"}}]}`)
	p.waitContains("#t-events tbody", `"tail": "after-start"`, pageWait)
	p.waitContains("#t-last-id", fmt.Sprint(tailed.Last), pageWait)
	p.shot("tail")

	// Append form: refused for the reader token; with the writer's, an
	// append, then an AppendIf on a stale version.
	p.tab("append")
	p.set("a-type", "console-test")
	p.set("a-payload", `{"from":"append-form"}`)
	p.click("a-submit")
	p.waitContains("#auth-message", "403 Forbidden (POST /v1/append)", pageWait)
	p.waitContains("#a-error", "HTTP 403", pageWait)
	p.shot("append-forbidden")
	useToken(p, writer)
	p.click("a-submit")
	p.waitContains("#a-result", "Committed 1 event(s)", pageWait)
	p.click("a-if")
	p.set("a-ctx-types", "console-test")
	p.set("a-expected", "1")
	p.click("a-submit")
	// Four console-test events exist now: the context version is the last.
	p.waitContains("#a-conflict", "Expected context version 1, actual context version", pageWait)
	p.shot("append-conflict")
	p.tab("tail")
	p.waitContains("#t-events tbody", `"from": "append-form"`, pageWait)

	// Durable consumers: a name a service created (through the Go client)
	// is listed with its cursor once it handled the console-test events.
	store := c.Client(t)
	handled := make(chan uint64, 16)
	sub, err := store.StreamToDurable(ctx2(t), "console-projection",
		contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{"console-test"}}}},
		func(_ context.Context, batch []contract.EventRecord) error {
			handled <- batch[len(batch)-1].SequenceNumber
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(pageWait):
		t.Fatal("the durable consumer received nothing")
	}
	sub.Unsubscribe()
	p.tab("durable")
	msg := p.waitContains("#d-message", "durable consumer(s)", pageWait)
	if strings.Contains(msg, "failed") {
		t.Errorf("durable view: %q", msg)
	}
	p.waitContains(`[data-testid="durable-console-projection"]`, "console-test", pageWait)
	p.shot("durable")

	// Failover: kill the leader; the page shows the new one and the dead
	// node as unreachable.
	if err := c.Node(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), electWait)
	defer cancel2()
	newLeader, err := c.Leader(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	newLeaderID := c.Node(newLeader).ID()
	t.Logf("killed %s; new leader %s", oldLeaderID, newLeaderID)
	p.tab("overview")
	p.waitText("#ov-leader-id", "the new leader "+newLeaderID, electWait, func(s string) bool { return s == newLeaderID })
	p.waitText(`[data-testid="member-`+oldLeaderID+`"] .m-state`, oldLeaderID+" shown unreachable", pageWait,
		func(s string) bool { return s == "unreachable" })
	p.waitContains("#ov-member-count", fmt.Sprintf("%d members, %d reachable", nodes, nodes-1), pageWait)
	p.waitContains("#ov-warnings", oldLeaderID+" is unreachable", pageWait)
	if got := p.text(`[data-testid="member-` + newLeaderID + `"] .m-role`); got != "leader" {
		t.Errorf("new leader row of %s shows role %q", newLeaderID, got)
	}
	p.shot("overview-after-failover")

	// The tail lives on (or resumes by position) across the failover.
	after := appendEvent(t, api, writer, `{"events":[{"type":"console-test","payload":{"tail":"after-failover"}}]}`)
	p.tab("tail")
	p.waitContains("#t-events tbody", `"tail": "after-failover"`, electWait)
	p.waitContains("#t-last-id", fmt.Sprint(after.Last), pageWait)
	p.shot("tail-after-failover")

	// The node serving the page goes down: the tail says it is
	// disconnected, the overview that the node does not answer.
	if err := c.Node(viewer).Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitContains("#t-state", "disconnected", pageWait)
	p.tab("overview")
	p.waitContains("#ov-error", "does not answer", pageWait)
	p.waitContains("#ov-updated", "stale", pageWait)
	p.shot("serving-node-down")
}

// useToken enters a token as an operator does and waits until the node
// accepts it.
func useToken(p *page, token string) {
	p.t.Helper()
	p.set("token", token)
	p.click("token-save")
	p.waitText("#auth-message", "no auth message with the new token", actionTimeout, func(s string) bool { return s == "" })
	p.waitText("#ov-updated", "a status answer with the new token", actionTimeout, func(s string) bool { return strings.HasPrefix(s, "Updated") })
}

type appendResult struct {
	First uint64 `json:"first_sequence_number"`
	Last  uint64 `json:"last_sequence_number"`
}

// appendEvent posts to /v1/append, retrying while the cluster has no
// leader (503) for a bounded time.
func appendEvent(t *testing.T, base, token, body string) appendResult {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/append", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		var b []byte
		if err == nil {
			b, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				var r appendResult
				if err := json.Unmarshal(b, &r); err != nil || r.Last == 0 {
					t.Fatalf("append answer %s: %v", b, err)
				}
				return r
			}
			err = fmt.Errorf("HTTP %d: %s", res.StatusCode, b)
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("POST %s/v1/append: %v", base, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST %s/v1/append: %v", base, err)
		}
		time.Sleep(200 * time.Millisecond) // retry pacing while a leader is elected; no signal to wait on over HTTP
	}
}

// ctx2 bounds a harness call of the test.
func ctx2(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
