package streams

// LiveLag returns how far the live subscriptions (StreamAll, StreamTo) of
// the engine are behind its head: the largest head minus delivered
// position among them, and how many are behind at all. A live
// subscription that is waiting for the next commit is not behind.
func (e *Engine) LiveLag() (maxLag uint64, behind int) {
	head := e.cfg.Hub.Head()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.subs {
		if s.durable {
			continue
		}
		// start is set before goLive sets started (under s.mu); a
		// subscription still in its catch-up is left out. progress moves
		// once it has delivered what it read.
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			continue
		}
		pos := max(s.progress.Load(), s.start)
		if head > pos {
			maxLag = max(maxLag, head-pos)
			behind++
		}
	}
	return maxLag, behind
}
