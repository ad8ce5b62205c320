package raftlog

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestVoteGuard(t *testing.T) {
	a, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inner, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var allow atomic.Bool
	var refusals atomic.Int64
	var lastIndexSeen atomic.Uint64
	b := GuardVotes(inner, func(r VoteRequest) bool {
		if !r.Outgoing {
			lastIndexSeen.Store(r.LastLogIndex)
		}
		return allow.Load()
	}, func(string) { refusals.Add(1) })
	defer b.Close()

	// b's Raft: answers whatever reaches it, granting votes.
	served := make(chan string, 10)
	go func() {
		for rpc := range b.Consumer() {
			switch rpc.Command.(type) {
			case *raft.RequestVoteRequest:
				served <- "vote"
				rpc.Respond(&raft.RequestVoteResponse{Term: 7, Granted: true}, nil)
			case *raft.RequestPreVoteRequest:
				served <- "pre-vote"
				rpc.Respond(&raft.RequestPreVoteResponse{Term: 7, Granted: true}, nil)
			case *raft.AppendEntriesRequest:
				served <- "append"
				rpc.Respond(&raft.AppendEntriesResponse{Term: 7, Success: true}, nil)
			}
		}
	}()
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(a.LocalAddr())}
	vote := func() (*raft.RequestVoteResponse, *raft.RequestPreVoteResponse) {
		t.Helper()
		var vr raft.RequestVoteResponse
		if err := a.RequestVote("b", b.LocalAddr(), &raft.RequestVoteRequest{RPCHeader: header, Term: 7, LastLogIndex: 42}, &vr); err != nil {
			t.Fatal(err)
		}
		var pr raft.RequestPreVoteResponse
		if err := a.RequestPreVote("b", b.LocalAddr(), &raft.RequestPreVoteRequest{RPCHeader: header, Term: 8, LastLogIndex: 42}, &pr); err != nil {
			t.Fatal(err)
		}
		if got := lastIndexSeen.Load(); got != 42 {
			t.Fatalf("the predicate saw LastLogIndex %d, want the candidate's 42", got)
		}
		return &vr, &pr
	}
	cases := []struct {
		name  string
		allow bool
	}{{"withheld", false}, {"allowed", true}, {"withheld again", false}}
	for _, tc := range cases {
		allow.Store(tc.allow)
		before := refusals.Load()
		vr, pr := vote()
		if vr.Granted != tc.allow || pr.Granted != tc.allow {
			t.Fatalf("%s: vote granted %v, pre-vote granted %v", tc.name, vr.Granted, pr.Granted)
		}
		if !tc.allow {
			if vr.Term != 0 || pr.Term != 0 {
				t.Fatalf("%s: a refusal must carry term 0 (never depose a candidate), got %d and %d", tc.name, vr.Term, pr.Term)
			}
			if got := refusals.Load() - before; got != 2 {
				t.Fatalf("%s: %d refusals reported, want 2", tc.name, got)
			}
		} else {
			for _, want := range []string{"vote", "pre-vote"} {
				if got := <-served; got != want {
					t.Fatalf("%s: Raft saw %q, want %q", tc.name, got, want)
				}
			}
		}
		// Replication is never held back.
		var ar raft.AppendEntriesResponse
		if err := a.AppendEntries("b", b.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: header, Term: 7, Entries: []*raft.Log{{Index: 1, Term: 7, Type: raft.LogCommand}}}, &ar); err != nil || !ar.Success {
			t.Fatalf("%s: append entries through the guard: %v %+v", tc.name, err, ar)
		}
		if got := <-served; got != "append" {
			t.Fatalf("%s: Raft saw %q, want append", tc.name, got)
		}
		if tc.allow {
			continue
		}
		// A withheld node does not campaign either.
		var vr2 raft.RequestVoteResponse
		err := b.RequestVote("a", a.LocalAddr(), &raft.RequestVoteRequest{RPCHeader: header, Term: 9}, &vr2)
		if !errors.Is(err, ErrVotingWithheld) {
			t.Fatalf("%s: outgoing vote request: %v, want ErrVotingWithheld", tc.name, err)
		}
		var pr2 raft.RequestPreVoteResponse
		err = b.RequestPreVote("a", a.LocalAddr(), &raft.RequestPreVoteRequest{RPCHeader: header, Term: 9}, &pr2)
		if !errors.Is(err, ErrVotingWithheld) {
			t.Fatalf("%s: outgoing pre-vote request: %v, want ErrVotingWithheld", tc.name, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
