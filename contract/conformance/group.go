package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// Consumer groups (contract.Group). A store whose StreamToDurable refuses
// the option with errors.ErrUnsupported skips these cases.

func groupCases() []testCase {
	return []testCase{
		{"GroupOfOneIsADurableStream", testGroupOfOne},
		{"MembersShareKeysInOrder", testGroupMembersShare},
		{"LeavingMemberGivesPartitionsToOthers", testGroupMemberLeaves},
		{"ShapeMismatchRefused", testGroupShapeMismatch},
		{"AdminShowsResetsDeletesWholeGroup", testGroupAdmin},
		{"HandlerFailureEndsMemberBeforeTheBatch", testGroupHandlerFailure},
		{"UnsubscribeInsideHandler", testGroupUnsubscribeInsideHandler},
	}
}

// groupLog records what the members of one group handled: every event
// with the member and the partition (key) it came in, and whether a
// key's events were ever handled by two calls at once.
type groupLog struct {
	mu       sync.Mutex
	changed  chan struct{}
	byKey    map[string][]int // key → payload "n" values in handling order
	byMember map[int]int      // member → events handled
	seen     map[uint64]int   // sequence number → deliveries
	inflight map[string]bool  // key → a handler call holds it now
	overlap  []string
	total    int
	// cancelled counts handler calls whose ctx ended while they ran.
	cancelled int
}

func newGroupLog() *groupLog {
	return &groupLog{changed: make(chan struct{}), byKey: map[string][]int{}, byMember: map[int]int{},
		seen: map[uint64]int{}, inflight: map[string]bool{}}
}

func (l *groupLog) handler(member int) contract.StreamHandler {
	return func(ctx context.Context, batch []contract.EventRecord) error {
		type payload struct {
			Account string `json:"account"`
			N       int    `json:"n"`
		}
		keys := map[string]bool{}
		l.mu.Lock()
		for _, r := range batch {
			var p payload
			_ = json.Unmarshal(r.Payload, &p)
			if l.inflight[p.Account] {
				l.overlap = append(l.overlap, p.Account)
			}
			keys[p.Account] = true
		}
		for k := range keys {
			l.inflight[k] = true
		}
		l.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a handler that takes time, so overlaps would show
		l.mu.Lock()
		if ctx.Err() != nil {
			l.cancelled++
		}
		for _, r := range batch {
			var p payload
			_ = json.Unmarshal(r.Payload, &p)
			l.byKey[p.Account] = append(l.byKey[p.Account], p.N)
			l.seen[r.SequenceNumber]++
			l.byMember[member]++
			l.total++
		}
		for k := range keys {
			l.inflight[k] = false
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		return nil
	}
}

// waitTotal waits until n events were handled in all.
func (l *groupLog) waitTotal(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		l.mu.Lock()
		total, ch := l.total, l.changed
		l.mu.Unlock()
		if total >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the group handled %d events within %v, want %d", total, WaitTimeout, n)
		}
	}
}

// check asserts every one of n events was handled exactly once, each key's
// in the order appended, and no key by two calls at once.
func (l *groupLog) check(t testing.TB, n int, perKey map[string]int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if l.seen[seq] != 1 {
			t.Errorf("event %d was handled %d times, want once", seq, l.seen[seq])
		}
	}
	if l.total != n {
		t.Errorf("the group handled %d events, want %d", l.total, n)
	}
	for k, want := range perKey {
		got := l.byKey[k]
		if len(got) != want || !slices.IsSorted(got) {
			t.Errorf("key %s: handled %v, want 1..%d in order", k, got, want)
		}
	}
	if len(l.overlap) > 0 {
		t.Errorf("keys handled by two handler calls at once: %v", l.overlap)
	}
}

func (l *groupLog) members() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps(l.byMember)
}

func maps(m map[int]int) map[int]int {
	out := make(map[int]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// appendKeyed appends rounds × keys events, one batch per round, each
// with {"account": key, "n": round}; it returns how many per key.
func appendKeyed(t testing.TB, s contract.EventStore, keys, from, rounds int, perKey map[string]int) {
	t.Helper()
	for r := from; r < from+rounds; r++ {
		batch := make([]contract.NewEvent, keys)
		for k := range keys {
			acc := fmt.Sprintf("acc-%d", k)
			batch[k] = ev("Posted", fmt.Sprintf(`{"account":%q,"n":%d}`, acc, r))
			perKey[acc]++
		}
		mustAppend(t, s, batch...)
	}
}

func subscribeGroup(t testing.TB, s contract.EventStore, name string, partitions int, h contract.StreamHandler) contract.Subscription {
	t.Helper()
	sub, err := s.StreamAllDurable(t.Context(), name, h, contract.Group(contract.KeyField("account"), partitions))
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("the store does not run consumer groups: %v", err)
	}
	return keep(t, sub, err, fmt.Sprintf("StreamAllDurable %q as a group member", name))
}

// waitGroup waits until the group's info satisfies cond.
func waitGroup(t testing.TB, s contract.EventStore, name, what string, cond func(contract.DurableInfo) bool) contract.DurableInfo {
	t.Helper()
	a, ok := s.(contract.DurableAdmin)
	if !ok {
		t.Fatalf("the store does not implement contract.DurableAdmin")
	}
	deadline := time.Now().Add(WaitTimeout)
	for {
		ctx, cancel := opCtx()
		info, err := a.GetDurable(ctx, name)
		cancel()
		if err == nil && info.Group != nil && cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %q: %s: not within %v (last info %+v, error %v)", name, what, WaitTimeout, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holdersOf(info contract.DurableInfo) map[string]int {
	out := map[string]int{}
	for _, p := range info.Group.Partitions {
		if p.Holder != "" {
			out[p.Holder]++
		}
	}
	return out
}

// A group of one partition and one member delivers what a durable stream
// delivers: the same batches in the same order, from the cursor after a
// resubscribe.
func testGroupOfOne(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"account":"x"}`), ev("B", `{"account":"y"}`)) // 1, 2
	mustAppend(t, s, ev("A", `{}`))                                          // 3
	rec := NewRecorder(nil)
	sub := subscribeGroup(t, s, "g1", 1, rec.Handle)
	expectBatch(t, rec, "group of one, replay", 1, 2)
	expectBatch(t, rec, "group of one, replay", 3)
	mustAppend(t, s, ev("A", `{"account":"z"}`), ev("C", `{"account":"x"}`)) // 4, 5
	expectBatch(t, rec, "group of one, live", 4, 5)
	unsubscribe(t, sub)
	mustAppend(t, s, ev("A", `{"account":"x"}`)) // 6
	rec2 := NewRecorder(nil)
	subscribeGroupRetry(t, s, "g1", 1, rec2.Handle)
	expectBatch(t, rec2, "group of one, resubscribed: from its cursor", 6)
	rec2.ExpectNone(t, "group of one after its resume")
	if n := rec.Overlaps() + rec2.Overlaps(); n != 0 {
		t.Errorf("%d overlapping handler calls in a group of one partition", n)
	}
	info := waitGroup(t, s, "g1", "cursor at 6", func(i contract.DurableInfo) bool { return i.Cursor == 6 })
	if len(info.Group.Partitions) != 1 || info.Group.Spec.Key != contract.KeyField("account") || len(info.Group.Members) != 1 {
		t.Errorf("group info %+v: want 1 partition, key account, 1 member", *info.Group)
	}
}

// subscribeGroupRetry subscribes, retrying while the member slots or
// partitions of a member that just left are still being released.
func subscribeGroupRetry(t testing.TB, s contract.EventStore, name string, partitions int, h contract.StreamHandler) contract.Subscription {
	t.Helper()
	return durableRetry(t, "group member "+name, func() (contract.Subscription, error) {
		sub, err := s.StreamAllDurable(t.Context(), name, h, contract.Group(contract.KeyField("account"), partitions))
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("the store does not run consumer groups: %v", err)
		}
		return sub, err
	})
}

// Three members share eight partitions: every member gets some, every
// event is handled once, each key's events in order and never two of a
// key at once.
func testGroupMembersShare(t *testing.T, s contract.EventStore) {
	perKey := map[string]int{}
	appendKeyed(t, s, 12, 1, 5, perKey) // 60 events before anyone joins
	l := newGroupLog()
	subscribeGroup(t, s, "g", 8, l.handler(0))
	subscribeGroup(t, s, "g", 8, l.handler(1))
	subscribeGroup(t, s, "g", 8, l.handler(2))
	// Appended while the members settle: partitions change hands with
	// batches in their handlers.
	for range 40 {
		appendKeyed(t, s, 12, 1+perKey["acc-0"], 1, perKey)
		time.Sleep(10 * time.Millisecond) // spread over the members' balance rounds
	}
	waitGroup(t, s, "g", "three members holding 2 or 3 partitions each", func(i contract.DurableInfo) bool {
		h := holdersOf(i)
		if len(i.Group.Members) != 3 || len(h) != 3 {
			return false
		}
		for _, n := range h {
			if n < 2 || n > 3 {
				return false
			}
		}
		return true
	})
	appendKeyed(t, s, 12, 1+perKey["acc-0"], 10, perKey) // 120 more while all three run
	l.waitTotal(t, 660)
	time.Sleep(QuietWindow) // nothing more may come
	l.check(t, 660, perKey)
	l.mu.Lock()
	if l.cancelled != 0 {
		// Partitions changed hands while members joined: a member gives
		// a partition back after the batch in its handler, not during it.
		t.Errorf("%d handler calls had their ctx cancelled while members joined", l.cancelled)
	}
	l.mu.Unlock()
	for m, n := range l.members() {
		t.Logf("member %d handled %d events", m, n)
	}
}

// A member that leaves gives its partitions back; the others take them
// and continue from the cursors it stored.
func testGroupMemberLeaves(t *testing.T, s contract.EventStore) {
	perKey := map[string]int{}
	l := newGroupLog()
	a := subscribeGroup(t, s, "g", 4, l.handler(0))
	subscribeGroup(t, s, "g", 4, l.handler(1))
	waitGroup(t, s, "g", "two members with two partitions each", func(i contract.DurableInfo) bool {
		h := holdersOf(i)
		return len(h) == 2 && len(i.Group.Members) == 2
	})
	appendKeyed(t, s, 8, 1, 5, perKey)
	l.waitTotal(t, 40)
	unsubscribe(t, a)
	info := waitGroup(t, s, "g", "one member holding all four partitions", func(i contract.DurableInfo) bool {
		h := holdersOf(i)
		return len(i.Group.Members) == 1 && len(h) == 1 && h[i.Group.Members[0]] == 4
	})
	before := l.members()[0]
	appendKeyed(t, s, 8, 6, 5, perKey)
	l.waitTotal(t, 80)
	time.Sleep(QuietWindow)
	l.check(t, 80, perKey)
	if after := l.members()[0]; after != before {
		t.Errorf("the member that left handled %d events after Unsubscribe", after-before)
	}
	if info.Holder != "" {
		t.Errorf("a group's own Holder is %q, want empty (its partitions have holders)", info.Holder)
	}
}

// A group's name cannot be subscribed as a plain durable stream, a plain
// name not as a group, and a group not with another shape.
func testGroupShapeMismatch(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"account":"x"}`))
	subscribeGroup(t, s, "g", 4, func(context.Context, []contract.EventRecord) error { return nil })
	nop := func(context.Context, []contract.EventRecord) error { return nil }
	cases := []struct {
		what string
		sub  func() (contract.Subscription, error)
	}{
		{"a group's name as a plain durable stream", func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "g", nop)
		}},
		{"a group with another partition count", func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "g", nop, contract.Group(contract.KeyField("account"), 8))
		}},
		{"a group with another key", func() (contract.Subscription, error) {
			return s.StreamAllDurable(t.Context(), "g", nop, contract.Group(contract.KeyEventType(), 4))
		}},
		{"a group with another query", func() (contract.Subscription, error) {
			return s.StreamToDurable(t.Context(), "g", typeQ("A"), nop, contract.Group(contract.KeyField("account"), 4))
		}},
		{"a plain durable name as a group", func() (contract.Subscription, error) {
			sub, err := s.StreamAllDurable(t.Context(), "plain", nop)
			keep(t, sub, err, "StreamAllDurable plain")
			return s.StreamAllDurable(t.Context(), "plain", nop, contract.Group(contract.KeyField("account"), 4))
		}},
	}
	for _, c := range cases {
		sub, err := c.sub()
		if err == nil {
			sub.Unsubscribe()
			t.Errorf("%s: subscribed, want ErrDurableQueryMismatch", c.what)
			continue
		}
		if !errors.Is(err, contract.ErrDurableQueryMismatch) {
			t.Errorf("%s: error %v, want ErrDurableQueryMismatch", c.what, err)
		}
	}
	for _, bad := range []contract.DurableOption{
		contract.Group(contract.KeyField("account"), contract.MaxGroupPartitions+1),
		contract.Group(contract.KeyField("a..b"), 4),
	} {
		sub, err := s.StreamAllDurable(t.Context(), "bad", nop, bad)
		if err == nil {
			sub.Unsubscribe()
			t.Errorf("a malformed group option was accepted")
		} else if !errors.Is(err, contract.ErrInvalidQuery) {
			t.Errorf("a malformed group option: error %v, want ErrInvalidQuery", err)
		}
	}
}

// DurableAdmin shows a group with its partitions and members (and not its
// internal names), refuses to reset or delete it while members run, and
// resets or deletes the whole group.
func testGroupAdmin(t *testing.T, s contract.EventStore) {
	a := admin(t, s)
	perKey := map[string]int{}
	appendKeyed(t, s, 4, 1, 3, perKey) // 12 events
	l := newGroupLog()
	sub := subscribeGroup(t, s, "g", 4, l.handler(0))
	l.waitTotal(t, 12)
	info := waitGroup(t, s, "g", "every partition at 12", func(i contract.DurableInfo) bool {
		for _, p := range i.Group.Partitions {
			if p.Cursor != 12 {
				return false
			}
		}
		return true
	})
	if info.Cursor != 12 || info.Lag != 0 || len(info.Group.Members) != 1 || len(info.Group.Partitions) != 4 {
		t.Errorf("group info cursor %d lag %d members %v partitions %d: want 12, 0, one member, 4",
			info.Cursor, info.Lag, info.Group.Members, len(info.Group.Partitions))
	}
	ctx, cancel := opCtx()
	defer cancel()
	list, err := a.ListDurable(ctx)
	if err != nil {
		t.Fatalf("ListDurable: %v", err)
	}
	if len(list) != 1 || list[0].Name != "g" || list[0].Group == nil {
		t.Errorf("ListDurable listed %d names (first %+v), want only the group g with its group info", len(list), list)
	}
	if err := deleteName(a, "g", false); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Errorf("DeleteDurable of a running group: %v, want ErrDurableNameInUse", err)
	}
	if _, err := resetTo(t, a, "g", contract.StartPosition{}, false); !errors.Is(err, contract.ErrDurableNameInUse) {
		t.Errorf("ResetDurable of a running group: %v, want ErrDurableNameInUse", err)
	}
	unsubscribe(t, sub)
	waitGroup(t, s, "g", "no members", func(i contract.DurableInfo) bool { return len(i.Group.Members) == 0 && len(holdersOf(i)) == 0 })
	reset, err := resetTo(t, a, "g", after(4), false)
	if err != nil {
		t.Fatalf("ResetDurable of a free group: %v", err)
	}
	for _, p := range reset.Group.Partitions {
		if p.Cursor != 4 {
			t.Errorf("after a reset to 4, partition %d is at %d", p.Index, p.Cursor)
		}
	}
	l2 := newGroupLog()
	sub2 := subscribeGroupRetry(t, s, "g", 4, l2.handler(0))
	l2.waitTotal(t, 8)
	time.Sleep(QuietWindow)
	l2.mu.Lock()
	if l2.total != 8 || l2.seen[4] != 0 || l2.seen[5] != 1 {
		t.Errorf("after a reset to 4 the group handled %d events (seq 4: %d, seq 5: %d), want 8: 5..12", l2.total, l2.seen[4], l2.seen[5])
	}
	l2.mu.Unlock()
	unsubscribe(t, sub2)
	if err := deleteName(a, "g", false); err != nil {
		t.Fatalf("DeleteDurable of a free group: %v", err)
	}
	if _, err := a.GetDurable(ctx, "g"); !errors.Is(err, contract.ErrDurableNotFound) {
		t.Errorf("GetDurable after delete: %v, want ErrDurableNotFound", err)
	}
	// The name is free for any shape now.
	sub3, err := s.StreamAllDurable(t.Context(), "g", l2.handler(1))
	keep(t, sub3, err, "StreamAllDurable on a deleted group's name")
}

// A handler error ends the member with ErrHandlerFailed, as for a durable
// stream: the failed batch's partition keeps its cursor before it, so the
// next member gets that batch again.
func testGroupHandlerFailure(t *testing.T, s contract.EventStore) {
	mustAppend(t, s, ev("A", `{"account":"bad"}`)) // 1
	failing := func(_ context.Context, batch []contract.EventRecord) error {
		return errors.New("cannot handle this")
	}
	// The failure ends the member: in the call, when the batch came while
	// it subscribed (a remote member's replay runs inside the call), or
	// after it returned, through Done and Err.
	sub, err := s.StreamAllDurable(t.Context(), "g", failing, contract.Group(contract.KeyField("account"), 2))
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("the store does not run consumer groups: %v", err)
	}
	if err == nil {
		waitChan(t, sub.Done(), "the member to end after its handler failed")
		err = sub.Err()
	}
	if !errors.Is(err, contract.ErrHandlerFailed) {
		t.Fatalf("a member whose handler failed ended with %v, want ErrHandlerFailed", err)
	}
	rec := NewRecorder(nil)
	subscribeGroupRetry(t, s, "g", 2, rec.Handle)
	expectBatch(t, rec, "the next member, given the failed batch again", 1)
}

// Unsubscribe from inside a handler does not wait for itself, and the
// handler's nil return still moves its partition's cursor.
func testGroupUnsubscribeInsideHandler(t *testing.T, s contract.EventStore) {
	subs := make(chan contract.Subscription, 1)
	returned := make(chan struct{})
	handler := func(_ context.Context, batch []contract.EventRecord) error {
		sub := <-subs
		sub.Unsubscribe()
		close(returned)
		return nil
	}
	// The log is empty when the member subscribes, so its first batch
	// comes after the call returned (a replay may run inside the call).
	sub := subscribeGroup(t, s, "g", 1, handler)
	subs <- sub
	mustAppend(t, s, ev("A", `{"account":"x"}`)) // 1
	waitChan(t, returned, "Unsubscribe inside the handler to return")
	waitChan(t, sub.Done(), "the member to end")
	if err := sub.Err(); err != nil {
		t.Errorf("Err after Unsubscribe: %v, want nil", err)
	}
	info := waitGroup(t, s, "g", "no members", func(i contract.DurableInfo) bool { return len(i.Group.Members) == 0 })
	if info.Cursor != 1 {
		t.Errorf("cursor %d after the handler returned nil, want 1", info.Cursor)
	}
}
