package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factstr/factstr-go/internal/sendq"
	"github.com/factstr/factstr-go/internal/wire"
	"google.golang.org/protobuf/proto"
)

// maxAnswersPerMessage bounds the answers one Writes or Reads message
// carries; write answers are small (sequence numbers, or a status) and a
// read answer is bounded itself (maxReadAnswerBytes), so this keeps one
// message within gRPC's limit.
const maxAnswersPerMessage = 512

// MaxCallsInFlight bounds the requests of one Writes or Reads stream being
// decided at once; past it the stream stops reading, and gRPC's flow
// control holds the client back.
const MaxCallsInFlight = 1024

// callStream is what serveCalls needs of a Writes or Reads stream: how to
// take its messages apart and put answers together.
type callStream[Req, Resp any] struct {
	recv func() (Req, error)
	send func(Resp) error
	// requests unpacks a message (a batch, or one request); cancel
	// reports whether a request cancels id rather than asking something.
	requests func(Req) []Req
	id       func(Req) uint64
	cancel   func(Req) bool
	// answer decides one request; batch packs answers into one message,
	// nil when the client takes one answer a message.
	answer func(ctx context.Context, req Req) Resp
	batch  func([]Resp) Resp
	// done, if set, is told of every answered request and how long it took
	// (metrics).
	done func(req Req, resp Resp, took time.Duration)
}

// serveCalls serves a stream of calls. Each request runs on a goroutine of
// its own while it runs, as its unary call would, so a slow one does not
// hold back the ones behind it (the goroutines are reused: workers); answers go out through one sender in the order they are
// decided, the answers decided meanwhile in one message when the client
// takes batches. When the client ends the stream, what is still being
// decided is answered first.
func serveCalls[Req any, Resp proto.Message](ctx context.Context, cs callStream[Req, Resp]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := sendq.New[Resp]()
	sent := make(chan error, 1)
	go func() { sent <- out.DrainBatches(ctx, answerWith(cs.send, cs.batch)) }()
	slots := make(chan struct{}, MaxCallsInFlight)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inflight = map[uint64]context.CancelFunc{}
		pool     = newWorkers(workerIdle)
	)
	defer pool.stop()
	defer wg.Wait()
	for {
		msg, err := cs.recv()
		if err != nil {
			// Answer what is still being decided, then end.
			wg.Wait()
			out.Close()
			if serr := <-sent; serr != nil {
				return serr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for _, req := range cs.requests(msg) {
			id := cs.id(req)
			if cs.cancel(req) {
				mu.Lock()
				if cancel, ok := inflight[id]; ok {
					cancel()
				}
				mu.Unlock()
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			rctx, cancel := context.WithCancel(ctx)
			mu.Lock()
			inflight[id] = cancel
			mu.Unlock()
			wg.Add(1)
			pool.run(func() {
				defer wg.Done()
				defer func() { <-slots }()
				start := time.Now()
				resp := cs.answer(rctx, req)
				if cs.done != nil {
					cs.done(req, resp, time.Since(start))
				}
				mu.Lock()
				delete(inflight, id)
				mu.Unlock()
				cancel()
				out.Push(resp)
			})
		}
	}
}

// maxAnswerBytes bounds the encoded answers one batched message carries, far
// below what a client receives (the Go client takes 64 MiB, gRPC's default
// is 4 MiB): read answers are up to 1 MiB each, and many decided together
// must not make one message too large to receive. An answer larger than
// this goes alone, as it would without batches.
const maxAnswerBytes = 2 << 20

// answerWith sends answers one message each, or, when batch is set, the
// answers decided meanwhile in as few messages as maxAnswersPerMessage and
// maxAnswerBytes allow.
func answerWith[Resp proto.Message](send func(Resp) error, batch func([]Resp) Resp) func([]Resp) error {
	return func(answers []Resp) error {
		for len(answers) > 0 {
			n := 1
			if batch != nil {
				size := proto.Size(answers[0])
				for n < min(len(answers), maxAnswersPerMessage) {
					sz := proto.Size(answers[n])
					if size+sz > maxAnswerBytes {
						break
					}
					n, size = n+1, size+sz
				}
			}
			msg := answers[0]
			if n > 1 {
				msg = batch(answers[:n])
			}
			if err := send(msg); err != nil {
				return err
			}
			answers = answers[n:]
		}
		return nil
	}
}

// CallObserver is told of every call a Writes or Reads stream carries, as
// the unary call it stands for (Append, AppendIf, Query), so that metrics
// count and time them like those calls. A StreamObserver that implements
// it (WithObserver) is used.
type CallObserver interface {
	CallDone(fullMethod string, err error, took time.Duration)
}

// callDone returns the observer's CallDone, or nil.
func (s *EventStore) callDone() func(fullMethod string, err error, took time.Duration) {
	if o, ok := s.obs.(CallObserver); ok {
		return o.CallDone
	}
	return nil
}

// statusErr is the error an answer's status bytes carry (nil for none).
func statusErr(b []byte) error {
	if b == nil {
		return nil
	}
	return wire.StatusFromBytes(b)
}

// workerIdle is how long a stream's idle worker waits for the next request
// before it ends.
const workerIdle = 5 * time.Second

// workers runs a stream's requests on goroutines that outlive one request.
// A request served on a new goroutine starts on a small stack and grows it
// (query planning and bbolt's cursors run deep): copying stacks was 9% of
// a follower's CPU under reads. A request goes to an idle worker when one
// waits, else to a new one, so requests still never wait for each other.
type workers struct {
	jobs    chan func()
	quit    chan struct{}
	idle    time.Duration
	wg      sync.WaitGroup
	started atomic.Int64 // goroutines started, for tests
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan func()), quit: make(chan struct{}), idle: idle}
}

func (w *workers) run(job func()) {
	select {
	case w.jobs <- job:
	default:
		w.wg.Add(1)
		w.started.Add(1)
		go w.loop(job)
	}
}

func (w *workers) loop(job func()) {
	defer w.wg.Done()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		job()
		t.Reset(w.idle)
		select {
		case job = <-w.jobs:
		case <-t.C:
			return
		case <-w.quit:
			return
		}
	}
}

// stop ends the idle workers once every job has returned (the caller has
// waited for them) and waits for them to end.
func (w *workers) stop() {
	close(w.quit)
	w.wg.Wait()
}
