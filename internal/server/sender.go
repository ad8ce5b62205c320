package server

import (
	"context"
	"errors"
)

var errSenderClosed = errors.New("stream sender closed")

// sender sends one gRPC stream's messages from a goroutine of its own. A
// gRPC Send waits for the client's flow control, and only the end of the
// call unblocks it; through a sender, a delivery can give up when its ctx
// ends (the engine's stall timeout) and let the call end, which then
// unblocks the Send.
type sender[M any] struct {
	reqs chan sendReq[M]
	stop chan struct{}
}

type sendReq[M any] struct {
	m   M
	res chan error
}

func startSender[M any](send func(M) error) *sender[M] {
	sd := &sender[M]{reqs: make(chan sendReq[M]), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case r := <-sd.reqs:
				r.res <- send(r.m)
			case <-sd.stop:
				return
			}
		}
	}()
	return sd
}

// send sends m, in order with the other sends, and waits for the result
// unless ctx ends first.
func (sd *sender[M]) send(ctx context.Context, m M) error {
	r := sendReq[M]{m: m, res: make(chan error, 1)}
	select {
	case sd.reqs <- r:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-sd.stop:
		return errSenderClosed
	}
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// close stops the sender once its Send in progress, if any, returns. It
// does not wait: that Send returns when the call has ended.
func (sd *sender[M]) close() { close(sd.stop) }
