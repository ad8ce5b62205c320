package boltstore

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Deferred commits (WithCommitInterval).
//
// A bbolt commit costs about the same whether it carries one Raft entry or a
// hundred: it writes every page the transaction touched (the log's last
// page, the tail of each posting list, the idempotency records, meta) and
// the branch pages above them, and materialises each such page in memory
// first. Applying each Raft entry in a transaction of its own made that the
// largest part of a replica's CPU per append. A replica whose file is not
// fsynced anyway (the Raft log is its durability, and after an unclean stop
// it is rebuilt from the snapshot and the log) can instead keep one write
// transaction open across Apply calls and commit it when it is
// commitInterval old or holds maxOpenCommands commands, the way etcd's
// backend batches its bbolt transactions.
//
// What that changes for readers: a bbolt read transaction sees only what
// was committed, so every read (backend.view) first commits the open
// transaction when there is one. A reader therefore always sees every
// entry applied before it began, as before; a burst of reads shares one
// commit, and a store that only takes writes commits once per interval.
// AppendIf's version check and the idempotency lookups run inside the open
// transaction and see everything applied before them.
//
// What it changes for failures: a commit that fails (a full disk, an I/O
// error) loses the entries applied since the last commit although their
// results were returned. The store then refuses every later Apply and
// read with the error, its caller (the FSM) stops the node, and the node
// rebuilds the file from its snapshot and Raft log, which still hold those
// entries: nothing acknowledged is lost, and the replica never serves a
// state that skipped them.

// maxOpenCommands bounds the commands one open transaction collects before
// it commits, and with it the memory its dirty pages take.
const maxOpenCommands = 16384

// openTx is the write transaction a deferring store keeps open between
// Apply calls; applyMu guards it.
type openTx struct {
	tx    *bbolt.Tx
	a     *applier
	since time.Time
	timer *time.Timer
}

// keepOpen makes tx, with its applier a, the open transaction, committed
// by its timer unless a read or commitIfDue commits it first. applyMu is
// held.
func (b *backend) keepOpen(tx *bbolt.Tx, a *applier) *openTx {
	o := &openTx{tx: tx, a: a, since: time.Now()}
	o.timer = time.AfterFunc(b.interval, func() { b.commitDue(o) })
	b.open = o
	// Before any entry of this transaction is published: a reader that
	// waited for one of them sees the flag and commits first.
	b.dirty.Store(true)
	return o
}

// commitIfDue commits the open transaction once it is the interval old or
// holds maxOpenCommands commands. applyMu is held.
func (b *backend) commitIfDue() error {
	if o := b.open; o != nil && (o.a.commands >= maxOpenCommands || time.Since(o.since) >= b.interval) {
		return b.commitOpenLocked()
	}
	return nil
}

// commitDue is the timer of o: it commits o if it is still the open
// transaction.
func (b *backend) commitDue(o *openTx) {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	if b.open == o {
		if err := b.commitOpenLocked(); err != nil {
			b.log.Error("committing applied entries failed; the store refuses further applies and reads until it is rebuilt", "error", err)
		}
	}
}

// commitOpenLocked commits the open transaction, if any. applyMu is held.
func (b *backend) commitOpenLocked() error {
	o := b.open
	if o == nil {
		return b.failed
	}
	b.open = nil
	o.timer.Stop()
	if err := o.tx.Commit(); err != nil {
		return b.fail(fmt.Errorf("commit applied entries up to index %d: %w", o.a.applied, err))
	}
	b.commits.Add(1)
	b.dirty.Store(false)
	return nil
}

// failOpenLocked rolls the open transaction back after err and fails the
// store. applyMu is held.
func (b *backend) failOpenLocked(err error) error {
	if o := b.open; o != nil {
		b.open = nil
		o.timer.Stop()
		_ = o.tx.Rollback()
	}
	return b.fail(err)
}

// fail makes err the store's permanent state: see the comment at the top.
func (b *backend) fail(err error) error {
	b.failed = fmt.Errorf("%w (the state machine file %s lost applied entries and must be rebuilt from the raft log)", err, b.path)
	return b.failed
}

// rollbackOpenLocked drops the open transaction: for Abandon (a crash
// loses it too) and Restore (which replaces the whole state). applyMu is
// held.
func (b *backend) rollbackOpenLocked() {
	if o := b.open; o != nil {
		b.open = nil
		o.timer.Stop()
		_ = o.tx.Rollback()
		b.dirty.Store(false)
	}
}

// settle commits the open transaction, if any, so that a read transaction
// begun next sees every entry applied so far.
func (b *backend) settle() error {
	if !b.dirty.Load() {
		return nil
	}
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	return b.commitOpenLocked()
}

// Commits is the number of bbolt transactions Apply has committed (in
// deferred mode; each Apply commits its own otherwise, and is not counted).
func (b *backend) Commits() uint64 { return b.commits.Load() }
