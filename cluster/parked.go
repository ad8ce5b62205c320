package cluster

import (
	"context"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// Park records parked events and the cursor past them in one Raft entry,
// if holder still holds name.
func (d *raftDurables) Park(ctx context.Context, name, holder string, p streams.Parking) error {
	// The leader stamps the time.
	res, _, err := d.node().propose(ctx, []command.Command{command.ParkOf(name, holder, p, time.Time{})})
	if err != nil {
		return err
	}
	return res[0].Err
}

// DueParked reads this node's state: a redelivery asked for on another node
// is seen once this node applied it, at the subscription's next poll.
func (d *raftDurables) DueParked(_ context.Context, name string, limit int) ([]contract.ParkedEvent, error) {
	return d.node().store.Replica().ParkedEvents(name, 0, limit, true)
}

func (d *raftDurables) Unpark(ctx context.Context, name, holder string, seqs []uint64) error {
	res, _, err := d.node().propose(ctx, []command.Command{command.Unpark{Name: name, Holder: holder, Seqs: seqs}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// ListParked returns a page of name's parked events (contract.ParkedAdmin):
// a read, linearizable unless the ctx's read options say otherwise.
func (a *DurableAdmin) ListParked(ctx context.Context, name string, after uint64, limit int) ([]contract.ParkedEvent, error) {
	n := a.n
	if err := contract.ValidateDurableName(name); err != nil {
		return nil, err
	}
	if err := (*raftDurables)(n).read(ctx); err != nil {
		return nil, err
	}
	return n.store.Replica().ParkedEvents(name, after, boltstore.ParkedPageLimit(limit), false)
}

// RedeliverParked marks name's parked events for redelivery through the
// Raft log (contract.ParkedAdmin); the holder's node delivers them.
func (a *DurableAdmin) RedeliverParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return a.parkedAdmin(ctx, name, command.RedeliverParked{Name: name, UpTo: upTo})
}

// DropParked forgets name's parked events through the Raft log
// (contract.ParkedAdmin).
func (a *DurableAdmin) DropParked(ctx context.Context, name string, upTo uint64) (int, error) {
	return a.parkedAdmin(ctx, name, command.DropParked{Name: name, UpTo: upTo})
}

func (a *DurableAdmin) parkedAdmin(ctx context.Context, name string, c command.Command) (int, error) {
	n := a.n
	if err := contract.ValidateDurableName(name); err != nil {
		return 0, err
	}
	if n.closed.Load() {
		return 0, contract.ErrClosed
	}
	res, _, err := n.propose(ctx, []command.Command{c})
	if err != nil {
		return 0, err
	}
	if res[0].Err != nil {
		return 0, res[0].Err
	}
	return int(res[0].Cursor), nil
}

// ParkedCounts maps every durable name with parked events to their count,
// from this node's state (metrics read it at scrape time).
func (a *DurableAdmin) ParkedCounts() map[string]uint64 {
	n := a.n
	infos, err := n.store.Replica().DurableInfos("")
	if err != nil {
		return nil
	}
	out := make(map[string]uint64)
	for _, d := range infos {
		if d.Parked > 0 || d.Failure.Parks() {
			out[d.Name] = d.Parked
		}
	}
	return out
}
