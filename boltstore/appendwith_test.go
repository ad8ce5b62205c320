package boltstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// TestAppendWithIdempotencyKey: an explicit key makes a retry return the
// first outcome, marked Duplicate, for appends and for conflicts alike,
// and appends nothing; the context's key is the same key.
func TestAppendWithIdempotencyKey(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	key := func(k string) contract.AppendOptions { return contract.AppendOptions{IdempotencyKey: k} }

	first, err := s.AppendWith(ctx, []contract.NewEvent{ev("A", `{}`), ev("A", `{}`)}, key("k1"))
	if err != nil || first.Duplicate || first.FirstSequenceNumber != 1 || first.LastSequenceNumber != 2 {
		t.Fatalf("first AppendWith = %+v, %v; want 1-2, not a duplicate", first, err)
	}
	again, err := s.AppendWith(ctx, []contract.NewEvent{ev("A", `{}`)}, key("k1"))
	if err != nil || !again.Duplicate || again.AppendResult != first.AppendResult {
		t.Fatalf("retry with k1 = %+v, %v; want the first outcome %+v marked Duplicate", again, err, first.AppendResult)
	}
	viaCtx, err := s.Append(contract.WithIdempotencyKey(ctx, "k1"), []contract.NewEvent{ev("A", `{}`)})
	if err != nil || viaCtx != first.AppendResult {
		t.Fatalf("Append with k1 in the context = %+v, %v; want the first outcome", viaCtx, err)
	}

	q := typeQ("A")
	_, err = s.AppendIfWith(ctx, []contract.NewEvent{ev("A", `{}`)}, q, 1, key("k2"))
	var conflict *contract.ConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 2 {
		t.Fatalf("AppendIfWith on a moved context: %v, want a conflict at 2", err)
	}
	mustAppend(t, s, ev("A", `{}`)) // 3: the context moves again
	dup, err := s.AppendIfWith(ctx, []contract.NewEvent{ev("A", `{}`)}, q, 3, key("k2"))
	if !errors.As(err, &conflict) || conflict.Actual != 2 || !dup.Duplicate {
		t.Fatalf("retry of the conflicted k2 = %+v, %v; want the first outcome (conflict at 2) marked Duplicate, not an append at 4", dup, err)
	}
	if head := s.Replica().Hub().Head(); head != 3 {
		t.Fatalf("head %d, want 3: a retry appended", head)
	}
}
