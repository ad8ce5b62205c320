package membership

import (
	"fmt"
	"sync"
)

// localMeta is the meta this node gossips about itself and its encoding,
// which memberlist asks for (NodeMeta) whenever it builds an alive
// message.
//
// It is separate from the member view because of lock order: memberlist
// asks for the encoding sometimes while holding its own locks, so this
// lock must never be held while calling memberlist, and the view's lock is
// taken inside memberlist's callbacks. Each has its own lock, taken for a
// copy and nothing else.
type localMeta struct {
	mu      sync.Mutex
	meta    Meta
	leaving bool   // Leave has started; gossiped so peers report Left, not Dead
	buf     []byte // encodeMeta(meta, leaving)
}

func newLocalMeta(meta Meta) (*localMeta, error) {
	buf, err := encodeMeta(meta, false)
	if err != nil {
		return nil, fmt.Errorf("membership: encode meta: %w", err)
	}
	return &localMeta{meta: meta, buf: buf}, nil
}

// get returns the meta.
func (l *localMeta) get() Meta {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.meta
}

// set replaces the meta, keeping the leaving flag. On an error nothing
// changes.
func (l *localMeta) set(meta Meta) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf, err := encodeMeta(meta, l.leaving)
	if err != nil {
		return fmt.Errorf("membership: encode meta: %w", err)
	}
	l.meta, l.buf = meta, buf
	return nil
}

// markLeaving sets the leaving flag. Should the meta not encode with it
// (it did without), peers keep seeing it without the flag, and report a
// failure instead of a leave: that is all the flag is for.
func (l *localMeta) markLeaving() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaving = true
	if buf, err := encodeMeta(l.meta, true); err == nil {
		l.buf = buf
	}
}

// encoded returns the encoding to gossip. The caller must not change it.
func (l *localMeta) encoded() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf
}
