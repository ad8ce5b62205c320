package boltstore

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/fsm/command"
	"github.com/factstr/factstr-go/internal/streams"
)

// DurableInfos reads the durable name name ("" for every name, in name
// order) with the head of the same read. A name that does not exist is
// contract.ErrDurableNotFound.
func (s *Replica) DurableInfos(name string) ([]contract.DurableInfo, error) {
	if s.closing.Load() {
		return nil, contract.ErrClosed
	}
	var out []contract.DurableInfo
	now := s.opts.now()
	err := s.be.view(func(tx *bbolt.Tx) error {
		head := uint64FromBytes(tx.Bucket(bucketMeta).Get(metaHead))
		b := tx.Bucket(bucketDurables)
		r, err := newReader(tx)
		if err != nil {
			return err
		}
		add := func(k, v []byte) error {
			if streams.IsGroupInternal(string(k)) {
				return nil // shown in its group's info
			}
			d, err := decodeDurable(v)
			if err != nil {
				return fmt.Errorf("durable %q: %w", k, err)
			}
			info := d.info(string(k), head)
			if err := groupInfo(tx, &info); err != nil {
				return err
			}
			pending, err := r.firstPending(info.Query, info.Cursor)
			if err != nil {
				return fmt.Errorf("durable %q: %w", k, err)
			}
			info.LagTime = contract.DurableLagTime(now, pending)
			out = append(out, info)
			return nil
		}
		if name != "" {
			v := b.Get([]byte(name))
			if v == nil || streams.IsGroupInternal(name) {
				return fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name)
			}
			return add([]byte(name), v)
		}
		return b.ForEach(add)
	})
	return out, err
}

func (d durableRecord) info(name string, head uint64) contract.DurableInfo {
	info := contract.DurableInfo{
		Name: name, Query: d.query(), Start: d.start, Cursor: d.cursor, Head: head,
		Lag: contract.DurableLag(head, d.cursor), Holder: d.holder, Failure: d.failure, Parked: d.parked,
	}
	if d.created != 0 {
		info.Created = time.Unix(0, d.created).UTC()
	}
	if d.lastAck != 0 {
		info.LastAck = time.Unix(0, d.lastAck).UTC()
	}
	return info
}

// firstPending returns the OccurredAt of the first event after cursor that
// q matches (zero when there is none): how long it has waited is the lag
// of a name at cursor. The read stops at that first match, and uses the
// query's indexes, so a caught-up filtered name costs an index lookup.
func (r *reader) firstPending(q contract.EventQuery, cursor uint64) (time.Time, error) {
	if cursor >= r.head {
		return time.Time{}, nil
	}
	q.MinSequenceNumber = 0
	m, err := contract.NewMatcher(q)
	if err != nil {
		return time.Time{}, err
	}
	// The read is one bbolt transaction's, bounded by the log: no caller
	// ctx to end it early (DurableInfos serves admin reads).
	batches, _, err := r.readBatches(context.Background(), cursor, r.head, m, batchLimit{batches: 1})
	if err != nil || len(batches) == 0 {
		return time.Time{}, err
	}
	return batches[0][0].OccurredAt, nil
}

// heldRefused checks name for a reset or delete: it must exist, and be
// free unless force. refused is the command's own outcome, err a storage
// failure.
func (a *applier) heldRefused(name string, force bool, what string) (d durableRecord, refused, err error) {
	if cerr := checkName("durable stream name", name); cerr != nil {
		return durableRecord{}, cerr, nil
	}
	d, ok, err := a.loadDurable(name)
	if err != nil {
		return d, nil, err
	}
	if !ok {
		return d, fmt.Errorf("%w: %q", contract.ErrDurableNotFound, name), nil
	}
	if d.holder != "" && !force {
		return d, streams.HeldRefusal(what, name, d.holder), nil
	}
	return d, nil, nil
}

// resetDurable moves a name's cursor, backwards or forwards; forced on a
// held name, it takes the lease (the holder's next advance is refused).
func (a *applier) resetDurable(c *command.ResetDurable) (command.Result, error) {
	if res, handled, err := (groupApplier{a}).groupAdmin(c.Name, c.Force, &c.To); handled || err != nil {
		return res, err
	}
	d, refused, err := a.heldRefused(c.Name, c.Force, "reset")
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	cursor, cerr := streams.StartCursor(command.StartOf(c.To), a.r.head)
	if cerr != nil {
		return command.Result{Err: cerr}, nil
	}
	d.cursor, d.holder = cursor, ""
	return command.Result{Cursor: cursor}, a.storeDurable(c.Name, d)
}

func (a *applier) deleteDurable(c *command.DeleteDurable) (command.Result, error) {
	if res, handled, err := (groupApplier{a}).groupAdmin(c.Name, c.Force, nil); handled || err != nil {
		return res, err
	}
	_, refused, err := a.heldRefused(c.Name, c.Force, "delete")
	if err != nil || refused != nil {
		return command.Result{Err: refused}, err
	}
	if _, err := (parkedApplier{a}).dropParked(c.Name, 0); err != nil {
		return command.Result{}, err
	}
	return command.Result{}, a.durables.Delete([]byte(c.Name))
}

var _ contract.DurableAdmin = (*Store)(nil)

// ListDurable returns every durable name (contract.DurableAdmin).
func (s *Store) ListDurable(ctx context.Context) ([]contract.DurableInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	infos, err := s.Replica().DurableInfos("")
	if infos == nil && err == nil {
		infos = []contract.DurableInfo{}
	}
	return infos, err
}

// GetDurable returns one durable name (contract.DurableAdmin).
func (s *Store) GetDurable(ctx context.Context, name string) (contract.DurableInfo, error) {
	if err := ctx.Err(); err != nil {
		return contract.DurableInfo{}, err
	}
	if err := contract.ValidateDurableName(name); err != nil {
		return contract.DurableInfo{}, err
	}
	infos, err := s.Replica().DurableInfos(name)
	if err != nil {
		return contract.DurableInfo{}, err
	}
	return infos[0], nil
}

// ResetDurable moves name's cursor (contract.DurableAdmin). In replicated
// mode it is refused: the cluster proposes the command instead.
func (s *Store) ResetDurable(ctx context.Context, name string, to contract.StartPosition, force bool) (contract.DurableInfo, error) {
	if err := s.gc.adminWrite(ctx, name); err != nil {
		return contract.DurableInfo{}, err
	}
	if err := to.Validate(); err != nil {
		return contract.DurableInfo{}, err
	}
	res, err := s.gc.submit(command.ResetDurable{Name: name, To: to, Force: force})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return contract.DurableInfo{}, err
	}
	return s.GetDurable(ctx, name)
}

// DeleteDurable forgets name (contract.DurableAdmin).
func (s *Store) DeleteDurable(ctx context.Context, name string, force bool) error {
	if err := s.gc.adminWrite(ctx, name); err != nil {
		return err
	}
	res, err := s.gc.submit(command.DeleteDurable{Name: name, Force: force})
	if err != nil {
		return err
	}
	return res.Err
}

func (gc *committer) adminWrite(ctx context.Context, name string) error {
	if err := gc.writable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return contract.ValidateDurableName(name)
}
