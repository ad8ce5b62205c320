package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/wire"
)

// sse writes Server-Sent Events and flushes each one.
type sse struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func startSSE(w http.ResponseWriter, stall time.Duration) (*sse, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w), stall: stall}
	_ = s.rc.SetWriteDeadline(time.Now().Add(stall))
	return s, s.rc.Flush()
}

// event writes one event. data is JSON; a JSON text may hold line breaks
// (in a payload's whitespace), which SSE cannot carry in one data line:
// each line goes in a data line of its own, and the client joins them
// with "\n", so the text arrives unchanged (a carriage return, which SSE
// would read as a line end, is compacted away first).
func (s *sse) event(id, name string, data []byte) error {
	if bytes.IndexByte(data, '\r') >= 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, data); err == nil {
			data = c.Bytes()
		}
	}
	var b bytes.Buffer
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	fmt.Fprintf(&b, "event: %s\n", name)
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return s.write(b.Bytes())
}

// write writes and flushes p within the stall timeout
// (Config.WriteStallTimeout).
func (s *sse) write(p []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	if _, err := s.w.Write(p); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) comment(text string) error {
	return s.write([]byte(": " + text + "\n\n"))
}

// fail ends a started stream with an error event.
func (s *sse) fail(err error) {
	e := toAPIError(err)
	_ = s.event("", "error", bytes.TrimSuffix(e.body, []byte("\n")))
}

// batchEvent is the id (the batch's last sequence number) and data of a
// batch.
func batchEvent(b *factstrv1.Batch) (string, []byte) {
	evs := b.GetEvents()
	id := ""
	if len(evs) > 0 {
		id = strconv.FormatUint(evs[len(evs)-1].GetSequenceNumber(), 10)
	}
	return id, appendMessage(nil, b.ProtoReflect())
}

// receive runs recv in a goroutine of its own, so that keepalives go out
// while it waits; the channel closes after the first error (io.EOF at the
// end), which is sent on errc. Cancelling ctx ends recv (the gRPC stream's
// context) and the goroutine.
func receive[M any](ctx context.Context, recv func() (M, error)) (<-chan M, <-chan error) {
	msgs, errc := make(chan M), make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			m, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return msgs, errc
}

// streamParams reads the GET form of a stream request: query (EventQuery
// JSON), after, catch_up, consistency; other parameters are refused.
func streamParams(r *http.Request, allowed ...string) (streamRequestJSON, error) {
	var in streamRequestJSON
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return in, fmt.Errorf("%w: URL query: %w", errBadRequest, err)
	}
	for k, v := range vals {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return in, fmt.Errorf("%w: unknown parameter %q; want %s", errBadRequest, k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return in, fmt.Errorf("%w: parameter %q given %d times", errBadRequest, k, len(v))
		}
	}
	if q := vals.Get("query"); q != "" {
		in.Query = &queryJSON{}
		if err := decodeJSON([]byte(q), in.Query); err != nil {
			return in, fmt.Errorf("parameter query: %w", err)
		}
	}
	if s := vals.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return in, fmt.Errorf("%w: parameter after=%q: want a sequence number", errBadRequest, s)
		}
		in.After = &n
	}
	if s := vals.Get("catch_up"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return in, fmt.Errorf("%w: parameter catch_up=%q: want true or false", errBadRequest, s)
		}
		in.CatchUp = b
	}
	in.Consistency = vals.Get("consistency")
	return in, nil
}

func (a *API) streamGet(w http.ResponseWriter, r *http.Request) {
	in, err := streamParams(r, "query", "after", "catch_up", "consistency")
	if err != nil {
		writeError(w, err)
		return
	}
	a.stream(w, r, in)
}

func (a *API) streamPost(w http.ResponseWriter, r *http.Request) {
	var in streamRequestJSON
	if err := decodeBody(r, &in, true); err != nil {
		writeError(w, err)
		return
	}
	a.stream(w, r, in)
}

// stream relays a live stream. A position to resume after (Last-Event-ID,
// else after) catches up from there, then goes live: no gap and no
// duplicate, as the gRPC Stream with catch_up.
func (a *API) stream(w http.ResponseWriter, r *http.Request, in streamRequestJSON) {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
		if err != nil {
			writeError(w, fmt.Errorf("%w: Last-Event-ID %q: want the sequence number of an event id", errBadRequest, id))
			return
		}
		in.After = &n
	}
	cons, err := consistency(in.Consistency)
	if err != nil {
		writeError(w, err)
		return
	}
	q := in.Query.toProto()
	if in.After != nil {
		if q == nil {
			q = &factstrv1.EventQuery{}
		}
		q.MinSequenceNumber = *in.After
		in.CatchUp = true
	}
	ctx, cancel := context.WithCancel(outgoing(r))
	defer cancel()
	st, err := a.es.Stream(ctx, &factstrv1.StreamRequest{Query: q, Read: &factstrv1.ReadOptions{Consistency: cons}, CatchUp: in.CatchUp})
	if err != nil {
		writeError(w, err)
		return
	}
	msgs, errc := receive(ctx, st.Recv)
	relay(ctx, w, a.cfg.KeepAlive, a.cfg.WriteStallTimeout, a.closing, msgs, errc, func(s *sse, m *factstrv1.StreamResponse) error {
		switch k := m.GetKind().(type) {
		case *factstrv1.StreamResponse_Subscribed:
			return s.event("", "subscribed", appendMessage(nil, k.Subscribed.ProtoReflect()))
		case *factstrv1.StreamResponse_Batch:
			id, data := batchEvent(k.Batch)
			return s.event(id, "batch", data)
		}
		return nil
	})
}

// relay answers the first message's outcome as the HTTP status (an error
// before any event is a plain error answer), then writes every message
// with write, and a keepalive comment when nothing was written for a
// while, until the stream ends, a write fails, the client goes away or
// closing is closed (the node shuts down: the client is told to resume
// elsewhere).
func relay[M any](ctx context.Context, w http.ResponseWriter, keepAlive, stall time.Duration, closing <-chan struct{}, msgs <-chan M, errc <-chan error, write func(*sse, M) error) {
	var first M
	select {
	case m, ok := <-msgs:
		if !ok {
			err := <-errc
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "the stream ended before it started; retry")
			}
			writeError(w, err)
			return
		}
		first = m
	case <-ctx.Done():
		return
	}
	s, err := startSSE(w, stall)
	if err != nil {
		return
	}
	if err := write(s, first); err != nil {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				if err := <-errc; !errors.Is(err, io.EOF) && ctx.Err() == nil {
					s.fail(err)
				}
				return
			}
			if err := write(s, m); err != nil {
				return
			}
			tick.Reset(keepAlive)
		case <-tick.C:
			if err := s.comment("keepalive"); err != nil {
				return
			}
		case <-closing:
			s.fail(status.Error(codes.Unavailable, "the node is shutting down; resume on another node (Last-Event-ID)"))
			return
		case <-ctx.Done():
			return
		}
	}
}

// durable relays a durable stream: each batch is written and flushed,
// then acknowledged, so the cursor advances past what reached the
// connection. The client going away cancels the call, which releases the
// name; the cursor stays after the last acknowledged batch.
func (a *API) durable(w http.ResponseWriter, r *http.Request) {
	in, err := streamParams(r, "query", "consistency", "start", "group_key", "partitions")
	if err != nil {
		writeError(w, err)
		return
	}
	start, err := durableStart(r.URL.Query().Get("start"))
	if err != nil {
		writeError(w, err)
		return
	}
	group, err := durableGroup(r.URL.Query().Get("group_key"), r.URL.Query().Get("partitions"))
	if err != nil {
		writeError(w, err)
		return
	}
	cons, err := consistency(in.Consistency)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(outgoing(r))
	defer cancel()
	st, err := a.es.StreamDurable(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	sub := &factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Subscribe{Subscribe: &factstrv1.DurableSubscribe{
		Name: r.PathValue("name"), Query: in.Query.toProto(), Read: &factstrv1.ReadOptions{Consistency: cons}, Start: start,
		Group: group,
	}}}
	if err := st.Send(sub); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, err)
		return
	}
	msgs, errc := receive(ctx, st.Recv)
	relay(ctx, w, a.cfg.KeepAlive, a.cfg.WriteStallTimeout, a.closing, msgs, errc, func(s *sse, m *factstrv1.StreamDurableResponse) error {
		switch k := m.GetKind().(type) {
		case *factstrv1.StreamDurableResponse_Subscribed:
			return s.event("", "subscribed", appendMessage(nil, k.Subscribed.ProtoReflect()))
		case *factstrv1.StreamDurableResponse_Batch:
			id, data := batchEvent(k.Batch)
			if err := s.event(id, "batch", data); err != nil {
				return err
			}
			evs := k.Batch.GetEvents()
			if len(evs) == 0 {
				return nil
			}
			return st.Send(&factstrv1.StreamDurableRequest{Kind: &factstrv1.StreamDurableRequest_Ack{
				Ack: &factstrv1.DurableAck{LastSequenceNumber: evs[len(evs)-1].GetSequenceNumber()}}})
		case *factstrv1.StreamDurableResponse_Released:
			return s.event("", "released", appendMessage(nil, k.Released.ProtoReflect()))
		}
		return nil
	})
}

// durableStart reads the start parameter of a durable stream: where a new
// name starts ("beginning", the default; "end"; or a sequence number to
// start after). An existing name resumes from its cursor whatever it says.
func durableStart(s string) (*factstrv1.DurableStart, error) {
	if s == "" {
		return nil, nil
	}
	p, err := contract.ParseStartPosition(s)
	if err != nil {
		return nil, fmt.Errorf("%w: parameter start=%q: want beginning, end or a sequence number", errBadRequest, s)
	}
	return wire.StartToProto(p), nil
}

// durableGroup reads the consumer group parameters of a durable stream:
// group_key joins the name's group ("$type" or a dotted payload field),
// partitions is a new group's partition count (default 8).
func durableGroup(key, partitions string) (*factstrv1.GroupSpec, error) {
	if key == "" {
		if partitions != "" {
			return nil, fmt.Errorf("%w: parameter partitions is for a consumer group: give group_key", errBadRequest)
		}
		return nil, nil
	}
	if _, err := contract.ParseGroupKey(key); err != nil {
		return nil, fmt.Errorf("%w: parameter group_key=%q: %v", errBadRequest, key, err)
	}
	g := &factstrv1.GroupSpec{Key: key}
	if partitions != "" {
		n, err := strconv.ParseUint(partitions, 10, 32)
		if err != nil || n == 0 || n > contract.MaxGroupPartitions {
			return nil, fmt.Errorf("%w: parameter partitions=%q: want 1 to %d", errBadRequest, partitions, contract.MaxGroupPartitions)
		}
		g.Partitions = uint32(n)
	}
	return g, nil
}
