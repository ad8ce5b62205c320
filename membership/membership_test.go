package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// converge bounds every wait for gossip. With FastTimings convergence takes
// tens of milliseconds; the margin is for a loaded -race run.
const converge = 10 * time.Second

func TestSingleNodeBootstrapsAlone(t *testing.T) {
	sink := newLogSink(t)
	cfg := testConfig(sink, "a", "127.0.0.1:0")
	cfg.Meta.BootstrapExpect = 1
	a := startNode(t, cfg)

	self := a.LocalMember()
	if self.State != StateAlive || self.Meta != cfg.Meta || !strings.HasPrefix(self.Addr, "127.0.0.1:") || strings.HasSuffix(self.Addr, ":0") {
		t.Fatalf("LocalMember = %+v", self)
	}
	servers, err := a.WaitBootstrap(ctxTimeout(t, converge), 1)
	if err != nil || len(servers) != 1 || servers[0].Meta.NodeID != "a" {
		t.Fatalf("WaitBootstrap = %+v, %v; want [a]", servers, err)
	}
}

func TestThreeNodesBootstrapTogether(t *testing.T) {
	sink := newLogSink(t)
	ids := []string{"node-c", "node-a", "node-b"} // deliberately unsorted
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}

	type result struct {
		id      string
		servers []Member
		err     error
	}
	results := make(chan result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		var seeds []string
		for j, a := range addrs {
			if j != i {
				seeds = append(seeds, a)
			}
		}
		cfg := testConfig(sink, id, addrs[i], seeds...)
		cfg.Meta.BootstrapExpect = 3
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := Start(t.Context(), cfg)
			if err != nil {
				results <- result{id: id, err: err}
				return
			}
			t.Cleanup(func() { _ = m.Shutdown() })
			servers, err := m.WaitBootstrap(ctxTimeout(t, converge), 3)
			results <- result{id, servers, err}
		}()
	}
	wg.Wait()
	close(results)

	var first []string
	for r := range results {
		if r.err != nil {
			t.Fatalf("%s: WaitBootstrap: %v", r.id, r.err)
		}
		var got []string
		for _, s := range r.servers {
			got = append(got, s.Meta.NodeID+"@"+s.Meta.RaftAddr)
		}
		if first == nil {
			first = got
		}
		if !slices.Equal(got, first) {
			t.Fatalf("%s decided %v, another node decided %v", r.id, got, first)
		}
	}
	want := []string{
		"node-a@node-a.factstr.test:7000",
		"node-b@node-b.factstr.test:7000",
		"node-c@node-c.factstr.test:7000",
	}
	if !slices.Equal(first, want) {
		t.Fatalf("servers = %v, want %v", first, want)
	}
}

func TestJoinRetriesUntilSeedIsUp(t *testing.T) {
	sink := newLogSink(t)
	seedAddr := freeAddr(t)

	b := startNode(t, testConfig(sink, "b", freeAddr(t), seedAddr))
	// Proof that b tried while the seed was down; it logs its first failure.
	waitFor(t, converge, "b to report a failed join attempt", func() bool {
		return sink.contains("cannot join yet")
	})
	if got := aliveIDs(b); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("before the seed is up b sees %v", got)
	}

	a := startNode(t, testConfig(sink, "a", seedAddr))
	waitAlive(t, converge, []string{"a", "b"}, a, b)
}

func TestNodeWithRaftStateNeverBootstraps(t *testing.T) {
	sink := newLogSink(t)
	cfg := testConfig(sink, "old", "127.0.0.1:0")
	cfg.Meta.BootstrapExpect = 1
	cfg.Meta.HasRaftState = true
	old := startNode(t, cfg)

	_, err := old.WaitBootstrap(ctxTimeout(t, converge), 1)
	if !errors.Is(err, ErrNoBootstrap) {
		t.Fatalf("WaitBootstrap on a node with Raft state = %v, want ErrNoBootstrap", err)
	}

	// A fresh node that meets it must not bootstrap either, even though it
	// sees as many candidates as it expects.
	fcfg := testConfig(sink, "fresh", "127.0.0.1:0", old.LocalMember().Addr)
	fcfg.Meta.BootstrapExpect = 1
	fresh := startNode(t, fcfg)
	waitAlive(t, converge, []string{"fresh", "old"}, fresh)
	_, err = fresh.WaitBootstrap(ctxTimeout(t, converge), 1)
	if !errors.Is(err, ErrNoBootstrap) || !strings.Contains(err.Error(), "old") {
		t.Fatalf("WaitBootstrap next to a node with Raft state = %v, want ErrNoBootstrap naming old", err)
	}

	// A node configured never to bootstrap does not either.
	ncfg := testConfig(sink, "never", "127.0.0.1:0")
	never := startNode(t, ncfg)
	if _, err := never.WaitBootstrap(ctxTimeout(t, converge), 3); !errors.Is(err, ErrNoBootstrap) {
		t.Fatalf("WaitBootstrap with BootstrapExpect 0 = %v, want ErrNoBootstrap", err)
	}
}

func TestPeerWithClusterIDStopsBootstrap(t *testing.T) {
	sink := newLogSink(t)
	acfg := testConfig(sink, "a", "127.0.0.1:0")
	acfg.Meta.BootstrapExpect = 3
	a := startNode(t, acfg)
	bcfg := testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr)
	bcfg.Meta.BootstrapExpect = 3
	b := startNode(t, bcfg)
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	// b waits: it has seen 2 of 3.
	done := make(chan error, 1)
	go func() {
		_, err := b.WaitBootstrap(ctxTimeout(t, converge), 3)
		done <- err
	}()
	waitFor(t, converge, "b to wait for a third server", func() bool {
		return sink.contains("seen 2 of 3 servers")
	})

	// a turns out to belong to a cluster (it was bootstrapped elsewhere).
	meta := a.LocalMeta()
	meta.ClusterID = "cluster-1"
	if err := a.UpdateMeta(ctxTimeout(t, converge), meta); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoBootstrap) || !strings.Contains(err.Error(), "cluster-1") {
			t.Fatalf("WaitBootstrap = %v, want ErrNoBootstrap naming cluster-1", err)
		}
	case <-time.After(converge):
		t.Fatal("WaitBootstrap did not return after a peer announced a ClusterID")
	}
}

func TestMismatchedBootstrapExpectBlocks(t *testing.T) {
	sink := newLogSink(t)
	acfg := testConfig(sink, "a", "127.0.0.1:0")
	acfg.Meta.BootstrapExpect = 2
	a := startNode(t, acfg)
	bcfg := testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr)
	bcfg.Meta.BootstrapExpect = 3
	b := startNode(t, bcfg)
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	// a sees two alive members, as many as it expects, but b disagrees.
	start := time.Now()
	servers, err := a.WaitBootstrap(ctxTimeout(t, 500*time.Millisecond), 2)
	if !errors.Is(err, context.DeadlineExceeded) || servers != nil {
		t.Fatalf("WaitBootstrap = %v, %v; want no servers and DeadlineExceeded", servers, err)
	}
	if time.Since(start) < 400*time.Millisecond {
		t.Fatalf("WaitBootstrap returned early: %v", err)
	}
	if !sink.contains("BootstrapExpect 3 but this node has 2") {
		t.Fatal("the mismatch was not logged")
	}
	// Passing an expect that differs from our own Meta is a caller bug.
	if _, err := a.WaitBootstrap(ctxTimeout(t, converge), 3); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("WaitBootstrap(3) with Meta.BootstrapExpect 2 = %v, want ErrInvalidConfig", err)
	}
}

func TestUpdateMetaPropagates(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	b := startNode(t, testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr))
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	events, cancel := b.Subscribe()
	defer cancel()

	meta := a.LocalMeta()
	meta.ClusterID = "cluster-1"
	meta.HasRaftState = true
	meta.Version = "v2"
	if err := a.UpdateMeta(ctxTimeout(t, converge), meta); err != nil {
		t.Fatal(err)
	}
	if got := a.LocalMeta(); got != meta {
		t.Fatalf("LocalMeta = %+v, want %+v", got, meta)
	}

	ev := nextEvent(t, events, converge, "b sees a's update", func(ev Event) bool {
		return ev.Kind == EventUpdate && ev.Member.Meta.NodeID == "a"
	})
	if ev.Member.Meta != meta || ev.Prev.Version != "test" || ev.Prev.ClusterID != "" || ev.IncarnationChanged() {
		t.Fatalf("update event = %+v", ev)
	}
	if got, ok := b.Lookup("a"); !ok || got.Meta != meta || got.State != StateAlive {
		t.Fatalf("b.Lookup(a) = %+v, %v", got, ok)
	}

	// NodeID cannot change, and an oversized meta is refused.
	bad := meta
	bad.NodeID = "z"
	if err := a.UpdateMeta(ctxTimeout(t, converge), bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("UpdateMeta with a new NodeID = %v, want ErrInvalidConfig", err)
	}
	bad = meta
	bad.Version = strings.Repeat("x", 600)
	if err := a.UpdateMeta(ctxTimeout(t, converge), bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("UpdateMeta with oversized meta = %v, want ErrInvalidConfig", err)
	}
	if got := a.LocalMeta(); got != meta {
		t.Fatalf("a refused update changed LocalMeta to %+v", got)
	}
}

func TestLeaveIsSeenAsLeft(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	b := startNode(t, testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr))
	c := startNode(t, testConfig(sink, "c", "127.0.0.1:0", a.LocalMember().Addr))
	waitAlive(t, converge, []string{"a", "b", "c"}, a, b, c)

	events, cancel := b.Subscribe()
	defer cancel()

	if err := c.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, converge, "b sees c leave", func(ev Event) bool {
		if ev.Member.Meta.NodeID == "c" && ev.Kind == EventUpdate {
			// The leaving notice is internal; Meta did not change.
			t.Errorf("spurious update event before the leave: %+v", ev)
		}
		return ev.Member.Meta.NodeID == "c" && (ev.Kind == EventLeave || ev.Kind == EventFail)
	})
	if ev.Kind != EventLeave || ev.Member.State != StateLeft {
		t.Fatalf("b saw %v (state %v), want leave/left", ev.Kind, ev.Member.State)
	}
	for _, n := range []*Membership{a, b} {
		waitFor(t, converge, n.name+" to see c as left", func() bool {
			m, ok := n.Lookup("c")
			return ok && m.State == StateLeft
		})
	}
	if self := c.LocalMember(); self.State != StateLeft {
		t.Fatalf("c sees itself as %v, want left", self.State)
	}

	// After Leave: no more updates or joins; Leave again is a no-op.
	if err := c.UpdateMeta(ctxTimeout(t, converge), c.LocalMeta()); !errors.Is(err, ErrLeft) {
		t.Fatalf("UpdateMeta after Leave = %v, want ErrLeft", err)
	}
	if _, err := c.JoinNow(ctxTimeout(t, converge), []string{a.LocalMember().Addr}); !errors.Is(err, ErrLeft) {
		t.Fatalf("JoinNow after Leave = %v, want ErrLeft", err)
	}
	if err := c.Leave(time.Second); err != nil {
		t.Fatalf("second Leave = %v", err)
	}
}

func TestShutdownIsSeenAsFailed(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	b := startNode(t, testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr))
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	events, cancel := a.Subscribe()
	defer cancel()
	bEvents, _ := b.Subscribe()

	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, converge, "a sees b fail", func(ev Event) bool {
		return ev.Member.Meta.NodeID == "b" && ev.Kind != EventUpdate
	})
	if ev.Kind != EventFail || ev.Member.State != StateDead {
		t.Fatalf("a saw %v (state %v), want fail/dead", ev.Kind, ev.Member.State)
	}

	// Shutdown closes subscriptions and makes every call fail cleanly.
	for range bEvents { // drain until closed
	}
	if err := b.Shutdown(); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	if err := b.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
	if err := b.UpdateMeta(ctxTimeout(t, converge), b.LocalMeta()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("UpdateMeta after Shutdown = %v, want ErrShutdown", err)
	}
	if _, err := b.WaitBootstrap(ctxTimeout(t, converge), 1); err == nil {
		t.Fatal("WaitBootstrap after Shutdown succeeded")
	}
	ch, cancelB := b.Subscribe()
	cancelB()
	if _, ok := <-ch; ok {
		t.Fatal("Subscribe after Shutdown returned an open channel")
	}
}

func TestJoinNow(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	b := startNode(t, testConfig(sink, "b", "127.0.0.1:0"))

	if _, err := b.JoinNow(ctxTimeout(t, converge), []string{"nohost"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("JoinNow with a bad address = %v, want ErrInvalidConfig", err)
	}
	if _, err := b.JoinNow(ctxTimeout(t, converge), []string{freeAddr(t)}); err == nil {
		t.Fatal("JoinNow to an address nobody listens on succeeded")
	}
	n, err := b.JoinNow(ctxTimeout(t, converge), []string{a.LocalMember().Addr})
	if err != nil || n != 1 {
		t.Fatalf("JoinNow = %d, %v; want 1", n, err)
	}
	waitAlive(t, converge, []string{"a", "b"}, a, b)
}

func TestResolverTriesAllAddresses(t *testing.T) {
	sink := newLogSink(t)
	// Two nodes that know nothing of each other, on two IPs with one port:
	// what a headless Service name resolves to.
	addrA := freeAddr(t)
	addrB := freeAddrSamePort(t, addrA)
	a := startNode(t, testConfig(sink, "a", addrA))
	b := startNode(t, testConfig(sink, "b", addrB))
	hostA, port, _ := net.SplitHostPort(addrA)
	hostB, _, _ := net.SplitHostPort(addrB)

	var asked atomic.Value
	cfg := testConfig(sink, "c", "127.0.0.1:0", net.JoinHostPort("seeds.factstr.test", port))
	cfg.Resolver = func(_ context.Context, host string) ([]string, error) {
		asked.Store(host)
		return []string{hostA, hostB}, nil
	}
	c := startNode(t, cfg)

	// a and b can only have learnt of each other through c, and c can only
	// know both if it contacted both.
	waitAlive(t, converge, []string{"a", "b", "c"}, a, b, c)
	if got := asked.Load(); got != "seeds.factstr.test" {
		t.Fatalf("resolver asked for %v", got)
	}
}

func TestResolverIsAskedAgainOnEveryRetry(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", freeAddr(t)))
	hostA, port, _ := net.SplitHostPort(a.LocalMember().Addr)
	deadHost, _, _ := net.SplitHostPort(freeAddr(t)) // nobody listens there

	// Like a headless Service while pods start: first the name does not
	// resolve, then only to a pod that is not listening, then to a.
	var calls atomic.Int32
	cfg := testConfig(sink, "c", "127.0.0.1:0", net.JoinHostPort("seeds.factstr.test", port))
	cfg.Resolver = func(_ context.Context, host string) ([]string, error) {
		switch calls.Add(1) {
		case 1:
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		case 2:
			return []string{deadHost}, nil
		default:
			return []string{deadHost, hostA}, nil
		}
	}
	c := startNode(t, cfg)
	waitAlive(t, converge, []string{"a", "c"}, a, c)
	if n := calls.Load(); n < 3 {
		t.Fatalf("resolver called %d times, want at least 3 (once per attempt)", n)
	}
}

func TestAdvertiseAddrNameIsResolved(t *testing.T) {
	sink := newLogSink(t)
	bind := freeAddr(t)
	ip, port, _ := net.SplitHostPort(bind)
	cfg := testConfig(sink, "a", bind)
	cfg.AdvertiseAddr = net.JoinHostPort("a.factstr.test", port)
	cfg.Resolver = func(_ context.Context, host string) ([]string, error) {
		if host != "a.factstr.test" {
			return nil, fmt.Errorf("unexpected lookup of %q", host)
		}
		return []string{"fd00::1", ip}, nil // IPv4 preferred
	}
	a := startNode(t, cfg)
	if got := a.LocalMember().Addr; got != bind {
		t.Fatalf("advertised %s, want %s", got, bind)
	}

	// A pod's own DNS record may appear a little after the pod starts.
	var calls atomic.Int32
	cfg = testConfig(sink, "b", freeAddr(t))
	_, port, _ = net.SplitHostPort(cfg.BindAddr)
	bip, _, _ := net.SplitHostPort(cfg.BindAddr)
	cfg.AdvertiseAddr = net.JoinHostPort("b.factstr.test", port)
	cfg.Resolver = func(context.Context, string) ([]string, error) {
		if calls.Add(1) < 3 {
			return nil, errors.New("nxdomain")
		}
		return []string{bip}, nil
	}
	b := startNode(t, cfg)
	if got := b.LocalMember().Addr; got != cfg.BindAddr || calls.Load() != 3 {
		t.Fatalf("advertised %s after %d lookups, want %s after 3", got, calls.Load(), cfg.BindAddr)
	}

	// One that never resolves fails Start when ctx ends.
	cfg = testConfig(sink, "c", freeAddr(t))
	cfg.AdvertiseAddr = "c.factstr.test:7946"
	cfg.Resolver = func(context.Context, string) ([]string, error) { return nil, errors.New("nxdomain") }
	if m, err := Start(ctxTimeout(t, 300*time.Millisecond), cfg); err == nil {
		_ = m.Shutdown()
		t.Fatal("Start with an unresolvable AdvertiseAddr succeeded")
	} else if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nxdomain") {
		t.Fatalf("Start with an unresolvable AdvertiseAddr = %v, want the lookup error and DeadlineExceeded", err)
	}
}

func TestNodeIDConflictIsReported(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	b := startNode(t, testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr))
	waitAlive(t, converge, []string{"a", "b"}, a, b)
	bAddr := b.LocalMember().Addr

	events, cancel := a.Subscribe()
	defer cancel()

	// A second process claims b's NodeID from another address.
	cfg := testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr)
	cfg.Meta.Incarnation = "inc-impostor"
	impostor := startNode(t, cfg)

	ev := nextEvent(t, events, converge, "a reports the conflict", func(ev Event) bool {
		return ev.Kind == EventConflict
	})
	if ev.Member.Meta.NodeID != "b" || ev.Member.Addr != impostor.LocalMember().Addr ||
		ev.Member.Meta.Incarnation != "inc-impostor" || ev.Prev.Incarnation != "inc-b" {
		t.Fatalf("conflict event = %+v", ev)
	}
	if a.Conflicts() == 0 {
		t.Fatal("a.Conflicts() = 0")
	}
	// memberlist keeps the node it knew.
	if m, _ := a.Lookup("b"); m.Addr != bAddr || m.Meta.Incarnation != "inc-b" {
		t.Fatalf("a.Lookup(b) = %+v, want the original at %s", m, bAddr)
	}
	waitFor(t, converge, "the impostor to see the conflict too", func() bool { return impostor.Conflicts() > 0 })
}

func TestRestartWithNewIncarnation(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	bAddr := freeAddr(t)
	b, err := Start(t.Context(), testConfig(sink, "b", bAddr, a.LocalMember().Addr))
	if err != nil {
		t.Fatal(err)
	}
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	events, cancel := a.Subscribe()
	defer cancel()
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// b comes back at the same address with a wiped data directory.
	cfg := testConfig(sink, "b", bAddr, a.LocalMember().Addr)
	cfg.Meta.Incarnation = "inc-b-wiped"
	b2 := startNode(t, cfg)
	ev := nextEvent(t, events, converge, "a sees b with a new incarnation", func(ev Event) bool {
		return ev.Member.Meta.NodeID == "b" && ev.Member.Meta.Incarnation == "inc-b-wiped"
	})
	if !ev.IncarnationChanged() || ev.Prev.Incarnation != "inc-b" {
		t.Fatalf("event = %+v, want IncarnationChanged from inc-b", ev)
	}
	waitAlive(t, converge, []string{"a", "b"}, a, b2)
}

func TestRestartWithNewAddressReclaimsName(t *testing.T) {
	sink := newLogSink(t)
	// Without periodic push/pull (30s in production) only the join loop's
	// re-announcing can get the new address accepted in time.
	noPushPull := func(c *memberlist.Config) {
		FastTimings(c)
		c.PushPullInterval = 0
	}
	cfg := func(id string, join ...string) Config {
		c := testConfig(sink, id, "127.0.0.1:0", join...)
		c.Tune = noPushPull
		return c
	}
	a := startNode(t, cfg("a"))
	b, err := Start(t.Context(), cfg("b", a.LocalMember().Addr))
	if err != nil {
		t.Fatal(err)
	}
	waitAlive(t, converge, []string{"a", "b"}, a, b)
	if err := b.Shutdown(); err != nil { // a crash: no leave
		t.Fatal(err)
	}

	// The pod comes back at once with a new IP, before a has noticed.
	b2 := startNode(t, cfg("b", a.LocalMember().Addr))
	newAddr := b2.LocalMember().Addr
	waitFor(t, converge, "a to accept b at its new address "+newAddr, func() bool {
		m, ok := a.Lookup("b")
		return ok && m.Addr == newAddr && m.State == StateAlive
	})
	waitAlive(t, converge, []string{"a", "b"}, a, b2)
}

func TestSubscriberOverflowDropsAndCounts(t *testing.T) {
	sink := newLogSink(t)
	a := startNode(t, testConfig(sink, "a", "127.0.0.1:0"))
	slow, cancelSlow := a.Subscribe()
	fast, cancelFast := a.Subscribe()
	defer cancelFast()

	const extra = 10
	a.view.mu.Lock()
	for i := range SubscriberBuffer + extra {
		a.view.publishLocked(Event{Kind: EventUpdate, Member: Member{Meta: Meta{NodeID: fmt.Sprint(i)}}})
		if i < SubscriberBuffer {
			<-fast // a consumer that keeps up loses nothing
		}
	}
	a.view.mu.Unlock()

	if got := a.DroppedEvents(); got != extra {
		t.Fatalf("DroppedEvents = %d, want %d", got, extra)
	}
	if len(slow) != SubscriberBuffer {
		t.Fatalf("slow subscriber holds %d events, want %d", len(slow), SubscriberBuffer)
	}
	cancelSlow()
	cancelSlow() // idempotent
	n := 0
	for range slow {
		n++
	}
	if n != SubscriberBuffer {
		t.Fatalf("drained %d events after cancel, want %d", n, SubscriberBuffer)
	}
}

func TestEncryptedGossip(t *testing.T) {
	sink := newLogSink(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	acfg := testConfig(sink, "a", "127.0.0.1:0")
	acfg.SecretKey = key
	a := startNode(t, acfg)
	bcfg := testConfig(sink, "b", "127.0.0.1:0", a.LocalMember().Addr)
	bcfg.SecretKey = key
	b := startNode(t, bcfg)
	waitAlive(t, converge, []string{"a", "b"}, a, b)

	// Without the key, JoinNow fails and nobody learns of the outsider.
	ocfg := testConfig(sink, "outsider", "127.0.0.1:0")
	outsider := startNode(t, ocfg)
	if _, err := outsider.JoinNow(ctxTimeout(t, converge), []string{a.LocalMember().Addr}); err == nil {
		t.Fatal("a node without the gossip key joined")
	}
	if _, ok := a.Lookup("outsider"); ok {
		t.Fatal("a learnt of a node without the gossip key")
	}
}
