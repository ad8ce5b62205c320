package cluster

import (
	"slices"
	"sync"
)

// commitWatch frees a leader's proposal slot as soon as its entry is
// committed, instead of when the entry's future answers after the apply.
//
// With one entry in flight, the next entry used to wait for the whole cycle
// of the one before: the leader's log write, a follower's, and then the
// state machine's apply of all its commands (about a third of the cycle
// for AppendIf batches). The apply runs on Raft's FSM goroutine, apart from
// the leader loop that writes the log, so the next entry's log write and
// replication can overlap it. A committed entry no longer holds back
// anything that ordering needs: the state machine applies entries in log
// order and decides every AppendIf there, whenever they were proposed.
//
// hashicorp/raft tells a leader that an entry applied (its future), not
// that it committed. The FSM sees each entry as soon as it is committed,
// and on the leader it sees the very byte slice the proposer handed to
// raft.Apply (processLogs takes the log from the proposal's future), so the
// FSM's hook names the entry by its bytes' address. An entry the FSM never
// reports (this node lost leadership, the entry was read back from the log
// store) frees its slot when its future answers, as before.
type commitWatch struct {
	mu      sync.Mutex
	pending []*watchedEntry // proposal order
}

type watchedEntry struct {
	data []byte
	once sync.Once
	free func()
}

func (e *watchedEntry) release() { e.once.Do(e.free) }

// add watches an entry about to be proposed with data; free releases its
// slot, once, at commit or at the answer, whichever comes first.
func (w *commitWatch) add(data []byte, free func()) *watchedEntry {
	e := &watchedEntry{data: data, free: free}
	w.mu.Lock()
	w.pending = append(w.pending, e)
	w.mu.Unlock()
	return e
}

// committed is the FSM's hook, called with the bytes of every command entry
// before the state machine applies it. The entries proposed before the one
// it names are committed as well (log order), or failed: each frees its
// slot.
func (w *commitWatch) committed(data []byte) {
	if len(data) == 0 {
		return
	}
	w.mu.Lock()
	n := 0
	for i, e := range w.pending {
		if len(e.data) > 0 && &e.data[0] == &data[0] {
			n = i + 1
			break
		}
	}
	freed := make([]*watchedEntry, n)
	copy(freed, w.pending[:n])
	w.forget(n)
	w.mu.Unlock()
	for _, e := range freed {
		e.release()
	}
}

// answered frees e's slot if its commit did not already, and stops
// watching it.
func (w *commitWatch) answered(e *watchedEntry) {
	w.mu.Lock()
	if i := slices.Index(w.pending, e); i >= 0 {
		w.pending = slices.Delete(w.pending, i, i+1)
	}
	w.mu.Unlock()
	e.release()
}

// forget drops the first n pending entries. Called with mu held.
func (w *commitWatch) forget(n int) {
	rest := copy(w.pending, w.pending[n:])
	clear(w.pending[rest:])
	w.pending = w.pending[:rest]
}
