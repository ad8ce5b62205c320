package boltstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// randomEntries is a reproducible mix of every command kind, conflicts,
// invalid events, duplicates and durable traffic included.
func randomEntries(seed uint64, n int) []command.Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	types := []string{"A", "B", "C"}
	var entries []command.Entry
	var head uint64
	for i := range n {
		e := command.Entry{Index: uint64(i + 1)}
		at := epoch.Add(time.Duration(i) * time.Second)
		for range 1 + rng.IntN(4) {
			var c command.Command
			switch k := rng.IntN(10); {
			case k < 5:
				var cond *command.AppendIf
				if k == 4 {
					cond = &command.AppendIf{Context: typeQ(types[rng.IntN(3)]), Expected: uint64(rng.IntN(int(head) + 1))}
				}
				var events []contract.NewEvent
				for range 1 + rng.IntN(3) {
					typ := types[rng.IntN(3)]
					if rng.IntN(40) == 0 {
						typ = "" // invalid: the whole command fails
					}
					events = append(events, ev(typ, fmt.Sprintf(`{"n":%d,"k":"%c"}`, rng.IntN(5), 'a'+rng.IntN(3))))
				}
				var key string
				if rng.IntN(3) == 0 {
					key = fmt.Sprintf("key-%d", rng.IntN(8))
				}
				head += uint64(len(events)) // an upper bound is enough for Expected
				if cond != nil {
					c = command.AppendIf{Events: events, Context: cond.Context, Expected: cond.Expected, OccurredAt: at, IdempotencyKey: key}
				} else {
					c = command.Append{Events: events, OccurredAt: at, IdempotencyKey: key}
				}
			case k < 7:
				a := command.Acquire{Name: fmt.Sprintf("d%d", rng.IntN(3)), Holder: fmt.Sprintf("h%d", rng.IntN(2)), Query: typeQ(types[rng.IntN(2)])}
				if a.Name != "d0" { // d1 and d2 park
					a.Failure = contract.FailurePolicy{MaxDeliveries: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Second}
				}
				c = a
			case k < 8:
				c = command.Advance{Name: fmt.Sprintf("d%d", rng.IntN(3)), Holder: fmt.Sprintf("h%d", rng.IntN(2)), Cursor: uint64(rng.IntN(int(head) + 1))}
			case k < 9:
				c = command.Release{Name: fmt.Sprintf("d%d", rng.IntN(3)), Holder: fmt.Sprintf("h%d", rng.IntN(2))}
			default:
				switch rng.IntN(9) {
				case 4, 7, 8:
					c = command.Park{Name: fmt.Sprintf("d%d", 1+rng.IntN(2)), Holder: fmt.Sprintf("h%d", rng.IntN(2)),
						// Small numbers: head is only an upper bound of the log.
						Cursor: uint64(rng.IntN(int(head)/4 + 1)), Seqs: []uint64{uint64(1 + rng.IntN(int(head)/4+1)), uint64(1 + rng.IntN(4))},
						Attempts: 2, Error: "failed", OccurredAt: at}
				case 5:
					name, upTo := fmt.Sprintf("d%d", rng.IntN(3)), uint64(rng.IntN(int(head)+1))
					c = command.RedeliverParked{Name: name, UpTo: upTo}
					if rng.IntN(2) == 0 {
						c = command.DropParked{Name: name, UpTo: upTo}
					}
				case 6:
					c = command.Unpark{Name: fmt.Sprintf("d%d", 1+rng.IntN(2)), Holder: fmt.Sprintf("h%d", rng.IntN(2)),
						Seqs: []uint64{uint64(1 + rng.IntN(4))}}
				case 0:
					c = command.PruneIdempotency{Before: at.Add(-5 * time.Second)}
				case 1:
					c = command.ReleaseHolders{HolderPrefix: "h1"}
				case 2:
					c = command.ResetDurable{Name: fmt.Sprintf("d%d", rng.IntN(3)), To: contract.StartPosition{Kind: contract.StartKind(rng.IntN(3)),
						After: uint64(rng.IntN(int(head) + 2))}, Force: rng.IntN(2) == 0}
				default:
					c = command.DeleteDurable{Name: fmt.Sprintf("d%d", rng.IntN(3)), Force: rng.IntN(2) == 0}
				}
			}
			e.Commands = append(e.Commands, c)
		}
		entries = append(entries, e)
	}
	return entries
}

// fingerprint is everything observable of a store's state.
func fingerprint(t *testing.T, s *boltstore.Store) string {
	t.Helper()
	queries := []contract.EventQuery{
		{},
		typeQ("A"),
		typeQ("B", "C"),
		predQ(nil, `{"n":1}`),
		predQ([]string{"A"}, `{"k":"b"}`, `{"n":3}`),
		{Filters: []contract.EventFilter{{EventTypes: []string{}}}},
		{MinSequenceNumber: 7},
	}
	out := fmt.Sprintf("head=%d applied=%d\n", s.Replica().Head(), s.Replica().AppliedIndex())
	for _, q := range queries {
		out += mustJSON(t, mustQuery(t, s, q)) + "\n"
	}
	for i := range 3 {
		cur, holder, ok, err := s.Replica().Durable(fmt.Sprintf("d%d", i))
		out += fmt.Sprintf("d%d: %d %q %v %v\n", i, cur, holder, ok, err)
		failure, err := s.Replica().Failure(fmt.Sprintf("d%d", i))
		parked, perr := s.Replica().ParkedEvents(fmt.Sprintf("d%d", i), 0, 1000, false)
		out += fmt.Sprintf("  %v %v parked %s %v\n", failure, err, mustJSON(t, parked), perr)
	}
	return out
}

func fmtResults(res [][]command.Result) string {
	b, _ := json.Marshal(res)
	var errs string
	for _, rs := range res {
		for _, r := range rs {
			errs += fmt.Sprintf("%v;", r.Err)
		}
	}
	return string(b) + errs
}

func TestApplyDeterministic(t *testing.T) {
	entries := randomEntries(7, 120)
	a, _ := openStore(t, boltstore.WithReplicated(), boltstore.WithNoSync(true))
	b, _ := openStore(t, boltstore.WithReplicated(), boltstore.WithNoSync(true))

	resA, err := a.Apply(entries)
	if err != nil {
		t.Fatal(err)
	}
	// The same entries in uneven chunks give the same results and state.
	var resB [][]command.Result
	for i := 0; i < len(entries); {
		n := min(1+i%7, len(entries)-i)
		r, err := b.Apply(entries[i : i+n])
		if err != nil {
			t.Fatal(err)
		}
		resB = append(resB, r...)
		i += n
	}
	if fa, fb := fmtResults(resA), fmtResults(resB); fa != fb {
		t.Fatalf("results differ:\n%s\n%s", fa, fb)
	}
	fa, fb := fingerprint(t, a), fingerprint(t, b)
	if fa != fb {
		t.Fatalf("state differs:\n%s\n%s", fa, fb)
	}
	if a.Replica().Head() == 0 || a.Replica().AppliedIndex() != 120 {
		t.Fatalf("head %d applied %d", a.Replica().Head(), a.Replica().AppliedIndex())
	}

	// Re-applying what is already applied changes nothing and yields nil.
	again, err := a.Apply(entries[50:])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r != nil {
			t.Fatalf("entry %d was applied again: %v", entries[50+i].Index, r)
		}
	}
	if f := fingerprint(t, a); f != fa {
		t.Fatalf("re-apply changed the state:\n%s\n%s", fa, f)
	}
	// A mix of old and new entries applies only the new one.
	next := command.Entry{Index: 121, Commands: []command.Command{command.Append{OccurredAt: epoch, Events: []contract.NewEvent{ev("A", `{}`)}}}}
	mixed, err := a.Apply([]command.Entry{entries[119], next, entries[3]})
	if err != nil {
		t.Fatal(err)
	}
	if mixed[0] != nil || mixed[2] != nil || mixed[1] == nil || mixed[1][0].Err != nil {
		t.Fatalf("mixed apply results: %v", mixed)
	}
	if a.Replica().AppliedIndex() != 121 {
		t.Fatalf("applied index %d, want 121", a.Replica().AppliedIndex())
	}
}

func TestApplyIdempotencyKeys(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	appendCmd := func(key string, at time.Time, n int) command.Command {
		c := command.Append{OccurredAt: at, IdempotencyKey: key}
		for range n {
			c.Events = append(c.Events, ev("A", `{}`))
		}
		return c
	}
	apply := func(cmds ...command.Command) []command.Result {
		t.Helper()
		res, err := s.Apply([]command.Entry{{Index: s.Replica().AppliedIndex() + 1, Commands: cmds}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	t0 := epoch
	r := apply(appendCmd("k1", t0, 2), appendCmd("k1", t0, 5))
	if r[0].Duplicate || !r[1].Duplicate || r[1].Append != r[0].Append || s.Replica().Head() != 2 {
		t.Fatalf("same key twice in one entry: %+v, head %d", r, s.Replica().Head())
	}
	r = apply(appendCmd("k1", t0.Add(time.Hour), 1))
	if !r[0].Duplicate || r[0].Append.LastSequenceNumber != 2 || s.Replica().Head() != 2 {
		t.Fatalf("same key later: %+v, head %d", r, s.Replica().Head())
	}
	// A conflict is recorded too, and replayed even once the context would
	// no longer conflict.
	cond := command.AppendIf{OccurredAt: t0.Add(time.Minute), IdempotencyKey: "k2",
		Context: typeQ("A"), Expected: 0, Events: []contract.NewEvent{ev("B", `{}`)}}
	r = apply(cond)
	var ce *contract.ConflictError
	if !errors.As(r[0].Err, &ce) || ce.Actual != 2 || r[0].Duplicate {
		t.Fatalf("conditional append: %+v", r[0])
	}
	cond.Expected = 2
	r = apply(cond)
	if !errors.As(r[0].Err, &ce) || ce.Expected != 0 || ce.Actual != 2 || !r[0].Duplicate || s.Replica().Head() != 2 {
		t.Fatalf("retried conditional append: %+v, head %d", r[0], s.Replica().Head())
	}
	// Prune forgets what was recorded before the cutoff, exactly.
	apply(command.PruneIdempotency{Before: t0.Add(time.Minute)})
	r = apply(appendCmd("k1", t0.Add(2*time.Hour), 1), cond)
	if r[0].Duplicate || r[0].Append.FirstSequenceNumber != 3 {
		t.Fatalf("k1 after prune: %+v", r[0])
	}
	if !r[1].Duplicate {
		t.Fatalf("k2 was recorded at the cutoff and must survive it: %+v", r[1])
	}
	apply(command.PruneIdempotency{Before: t0.Add(3 * time.Hour)})
	cond.Expected = 3
	r = apply(cond)
	if r[0].Duplicate || r[0].Err != nil || r[0].Append.FirstSequenceNumber != 4 {
		t.Fatalf("k2 after prune: %+v", r[0])
	}
}

func TestApplyDurables(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	apply := func(c command.Command) command.Result { t.Helper(); return applyOne(t, s, c) }
	q := typeQ("A")
	if r := apply(command.Acquire{Name: "d", Holder: "n1/1", Query: q}); r.Err != nil || r.Cursor != 0 {
		t.Fatalf("acquire: %+v", r)
	}
	if r := apply(command.Acquire{Name: "d", Holder: "n2/1", Query: q}); !errors.Is(r.Err, contract.ErrDurableNameInUse) {
		t.Fatalf("second holder: %+v", r)
	}
	spelled := predQ([]string{"A"})
	spelled.Filters[0].PayloadPredicates = nil
	if r := apply(command.Acquire{Name: "d", Holder: "n1/1", Query: spelled}); r.Err != nil {
		t.Fatalf("the same holder again (a retried command): %+v", r)
	}
	if r := apply(command.Advance{Name: "d", Holder: "n2/1", Cursor: 5}); !errors.Is(r.Err, command.ErrNotHeld) {
		t.Fatalf("advance by a non-holder: %+v", r)
	}
	apply(command.Advance{Name: "d", Holder: "n1/1", Cursor: 5})
	apply(command.Advance{Name: "d", Holder: "n1/1", Cursor: 3}) // never backwards
	apply(command.Release{Name: "d", Holder: "n2/1"})            // not the holder: no-op
	if cur, holder, _, _ := s.Replica().Durable("d"); cur != 5 || holder != "n1/1" {
		t.Fatalf("durable: cursor %d holder %q", cur, holder)
	}
	apply(command.Acquire{Name: "e", Holder: "n2/9", Query: q})
	apply(command.ReleaseHolders{HolderPrefix: "n1/"})
	if _, holder, _, _ := s.Replica().Durable("d"); holder != "" {
		t.Fatalf("d still held by %q after releasing n1/", holder)
	}
	if _, holder, _, _ := s.Replica().Durable("e"); holder != "n2/9" {
		t.Fatalf("e lost its holder %q", holder)
	}
	if r := apply(command.Acquire{Name: "d", Holder: "n2/1", Query: typeQ("B")}); !errors.Is(r.Err, contract.ErrDurableQueryMismatch) {
		t.Fatalf("another query: %+v", r)
	}
	if r := apply(command.Acquire{Name: "d", Holder: "n2/1", Query: q}); r.Err != nil || r.Cursor != 5 {
		t.Fatalf("reacquire: %+v", r)
	}
}

// TestQueryWhileApplying: reads run in their own transactions and always
// see whole batches.
func TestQueryWhileApplying(t *testing.T) {
	s, _ := openStore(t, boltstore.WithNoSync(true))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() {
		for i := range 200 {
			if _, err := s.Append(ctx, []contract.NewEvent{ev("A", fmt.Sprintf(`{"i":%d}`, i)), ev("B", `{}`), ev("A", `{}`)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		res := mustQuery(t, s, contract.EventQuery{})
		if len(res.Events)%3 != 0 {
			t.Fatalf("query saw %d events: a batch half there", len(res.Events))
		}
	}
}

func TestApplyIncarnations(t *testing.T) {
	s, path := openStore(t, boltstore.WithReplicated())
	apply := func(c command.Command) command.Result { t.Helper(); return applyOne(t, s, c) }
	steps := []struct {
		name    string
		cmd     command.Command
		wantErr error
		want    map[string]string
	}{
		{"record", command.SetIncarnation{Node: "n1", Incarnation: "a"}, nil, map[string]string{"n1": "a"}},
		{"second node", command.SetIncarnation{Node: "n2", Incarnation: "b"}, nil, map[string]string{"n1": "a", "n2": "b"}},
		{"wiped n1 re-recorded", command.SetIncarnation{Node: "n1", Incarnation: "c"}, nil, map[string]string{"n1": "c", "n2": "b"}},
		{"forget n2", command.SetIncarnation{Node: "n2"}, nil, map[string]string{"n1": "c"}},
		{"empty node id refused", command.SetIncarnation{Incarnation: "x"}, contract.ErrInvalidQuery, map[string]string{"n1": "c"}},
	}
	for _, st := range steps {
		r := apply(st.cmd)
		if !errors.Is(r.Err, st.wantErr) {
			t.Fatalf("%s: error %v, want %v", st.name, r.Err, st.wantErr)
		}
		got, err := s.Replica().Incarnations()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("%s: records %v, want %v", st.name, got, st.want)
		}
	}
	removed := epoch.Add(time.Minute)
	apply(command.SetIncarnation{Node: "n3", Incarnation: "d", RemovedAt: removed})
	ms, err := s.Replica().Members()
	if err != nil || ms["n3"].Incarnation != "d" || !ms["n3"].RemovedAt.Equal(removed) || !ms["n1"].RemovedAt.IsZero() {
		t.Fatalf("removal record: %+v %v", ms, err)
	}
	apply(command.SetIncarnation{Node: "n3", Incarnation: "d"})
	if ms, _ := s.Replica().Members(); !ms["n3"].RemovedAt.IsZero() {
		t.Fatalf("re-recording a removed node must clear its removal: %+v", ms["n3"])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, path, boltstore.WithReplicated())
	if got, _ := s.Replica().Incarnations(); got["n1"] != "c" {
		t.Fatalf("after reopen: %v", got)
	}
	if err := s.Replica().ForgetIncarnations(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Replica().Incarnations(); len(got) != 0 {
		t.Fatalf("after ForgetIncarnations: %v", got)
	}
}

// applyOne applies c as the next entry and returns its result.
func applyOne(t *testing.T, s *boltstore.Store, c command.Command) command.Result {
	t.Helper()
	res, err := s.Apply([]command.Entry{{Index: s.Replica().AppliedIndex() + 1, Commands: []command.Command{c}}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0][0]
}

// A new name starts where its acquire says, decided when the acquire
// applies; an existing name keeps its cursor; a mismatch names the stored
// query.
func TestApplyDurableStart(t *testing.T) {
	s, _ := openStore(t, boltstore.WithReplicated())
	apply := func(c command.Command) command.Result { t.Helper(); return applyOne(t, s, c) }
	for range 3 {
		apply(command.Append{OccurredAt: epoch, Events: []contract.NewEvent{ev("A", `{}`), ev("B", `{}`)}})
	}
	q := typeQ("A")
	if r := apply(command.Acquire{Name: "end", Holder: "h/1", Query: q, Start: contract.StartPosition{Kind: contract.StartEnd}}); r.Err != nil || r.Cursor != 6 || !r.Created {
		t.Fatalf("acquire at the end: %+v", r)
	}
	if r := apply(command.Acquire{Name: "after", Holder: "h/2", Query: q, Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 4}}); r.Err != nil || r.Cursor != 4 {
		t.Fatalf("acquire after 4: %+v", r)
	}
	if r := apply(command.Acquire{Name: "ahead", Holder: "h/3", Query: q, Start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 7}}); !errors.Is(r.Err, contract.ErrPositionAhead) {
		t.Fatalf("acquire after 7 with the log at 6: %+v", r)
	}
	if _, _, ok, _ := s.Replica().Durable("ahead"); ok {
		t.Fatal("a refused acquire created the name")
	}
	if r := apply(command.Acquire{Name: "odd", Holder: "h/4", Query: q, Start: contract.StartPosition{Kind: 9}}); !errors.Is(r.Err, contract.ErrInvalidQuery) {
		t.Fatalf("acquire with an unknown start kind: %+v", r)
	}
	apply(command.Release{Name: "end", Holder: "h/1"})
	if r := apply(command.Acquire{Name: "end", Holder: "h/5", Query: q, Start: contract.StartPosition{Kind: contract.StartBeginning}}); r.Err != nil || r.Cursor != 6 || r.Created {
		t.Fatalf("acquire of an existing name from the beginning: %+v (it resumes from its cursor)", r)
	}
	r := apply(command.Acquire{Name: "after", Holder: "h/6", Query: typeQ("B")})
	if !errors.Is(r.Err, contract.ErrDurableQueryMismatch) || !strings.Contains(r.Err.Error(), "type A") {
		t.Fatalf("acquire with another query: %v, want ErrDurableQueryMismatch naming the stored query (type A)", r.Err)
	}
}
