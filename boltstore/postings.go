package boltstore

import (
	"bytes"
	"encoding/binary"

	"go.etcd.io/bbolt"
)

// Posting lists as ordered sets of sequence numbers. The query planner
// (query.go) composes the lists of a query's types and predicate leaves
// into one set it can probe from either end; index.go says what the lists
// hold and how their keys are laid out.

// seqSet is an ordered set of sequence numbers that can be probed from
// either end; the query planner composes posting lists into one.
type seqSet interface {
	// geq returns the smallest member >= t.
	geq(t uint64) (uint64, bool)
	// leq returns the largest member <= t.
	leq(t uint64) (uint64, bool)
}

// postingList is one list of a posting bucket.
type postingList struct {
	c      *bbolt.Cursor
	prefix []byte
	key    []byte // prefix + scratch sequence number
}

func newPostingList(b *bbolt.Bucket, prefix []byte) *postingList {
	return &postingList{c: b.Cursor(), prefix: prefix, key: postingKey(prefix, 0)}
}

func (p *postingList) seqOf(k []byte) (uint64, bool) {
	if len(k) != len(p.key) || !bytes.HasPrefix(k, p.prefix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(p.prefix):]), true
}

func (p *postingList) geq(t uint64) (uint64, bool) {
	binary.BigEndian.PutUint64(p.key[len(p.prefix):], t)
	k, _ := p.c.Seek(p.key)
	return p.seqOf(k)
}

func (p *postingList) leq(t uint64) (uint64, bool) {
	binary.BigEndian.PutUint64(p.key[len(p.prefix):], t)
	k, _ := p.c.Seek(p.key)
	if s, ok := p.seqOf(k); ok && s == t {
		return s, true
	}
	if k == nil {
		k, _ = p.c.Last()
	} else {
		k, _ = p.c.Prev()
	}
	return p.seqOf(k)
}

// memo remembers the last answer in each direction. Leapfrog and union
// probe the same child with slowly moving targets; an answer r for target
// q stays the answer for every target between q and r.
type memo struct {
	s seqSet

	gOK, gHave, gNone bool
	gQ, gR            uint64
	lOK, lHave, lNone bool
	lQ, lR            uint64
}

func (m *memo) geq(t uint64) (uint64, bool) {
	if m.gHave && m.gQ <= t && (m.gNone || m.gR >= t) {
		return m.gR, !m.gNone
	}
	r, ok := m.s.geq(t)
	m.gHave, m.gQ, m.gR, m.gNone = true, t, r, !ok
	return r, ok
}

func (m *memo) leq(t uint64) (uint64, bool) {
	if m.lHave && m.lQ >= t && (m.lNone || m.lR <= t) {
		return m.lR, !m.lNone
	}
	r, ok := m.s.leq(t)
	m.lHave, m.lQ, m.lR, m.lNone = true, t, r, !ok
	return r, ok
}

// intersection is a leapfrog join: every probe moves the target to the
// furthest child answer, so the sparsest list drives and the cost follows
// the smallest list, not the largest.
type intersection []seqSet

func (in intersection) geq(t uint64) (uint64, bool) {
	agreed := 0
	for i := 0; agreed < len(in); i = (i + 1) % len(in) {
		x, ok := in[i].geq(t)
		if !ok {
			return 0, false
		}
		if x == t {
			agreed++
		} else {
			t, agreed = x, 1
		}
	}
	return t, true
}

func (in intersection) leq(t uint64) (uint64, bool) {
	agreed := 0
	for i := 0; agreed < len(in); i = (i + 1) % len(in) {
		x, ok := in[i].leq(t)
		if !ok || x == 0 {
			return 0, false
		}
		if x == t {
			agreed++
		} else {
			t, agreed = x, 1
		}
	}
	return t, true
}

type union []seqSet

func (u union) geq(t uint64) (uint64, bool) {
	var best uint64
	found := false
	for _, s := range u {
		if x, ok := s.geq(t); ok && (!found || x < best) {
			best, found = x, true
		}
	}
	return best, found
}

func (u union) leq(t uint64) (uint64, bool) {
	var best uint64
	found := false
	for _, s := range u {
		if x, ok := s.leq(t); ok && (!found || x > best) {
			best, found = x, true
		}
	}
	return best, found
}
