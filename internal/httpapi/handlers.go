package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

func (a *API) append(w http.ResponseWriter, r *http.Request) {
	var in appendJSON
	if err := decodeBody(r, &in, false); err != nil {
		writeError(w, err)
		return
	}
	resp, err := a.es.Append(outgoing(r), &factstrv1.AppendRequest{Events: eventsToProto(in.Events), IdempotencyKey: in.IdempotencyKey})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, appendMessage(nil, resp.ProtoReflect()))
}

func (a *API) appendIf(w http.ResponseWriter, r *http.Request) {
	var in appendIfJSON
	if err := decodeBody(r, &in, false); err != nil {
		writeError(w, err)
		return
	}
	ctxQuery := in.Context.toProto()
	if ctxQuery == nil {
		ctxQuery = &factstrv1.EventQuery{}
	}
	resp, err := a.es.AppendIf(outgoing(r), &factstrv1.AppendIfRequest{
		Events: eventsToProto(in.Events), Context: ctxQuery,
		ExpectedContextVersion: in.ExpectedContextVersion, IdempotencyKey: in.IdempotencyKey,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, appendMessage(nil, resp.ProtoReflect()))
}

// query answers the whole result in one JSON object, written as the gRPC
// pages arrive (the node bounds a result by --max-query-bytes). A result
// the node cut at that bound is 200 with "complete":false: the caller
// queries on from last_returned_sequence_number.
func (a *API) query(w http.ResponseWriter, r *http.Request) {
	var in queryRequestJSON
	if err := decodeBody(r, &in, true); err != nil {
		writeError(w, err)
		return
	}
	cons, err := consistency(in.Consistency)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := outgoing(r)
	st, err := a.es.Query(ctx, &factstrv1.QueryRequest{
		Query:    in.Query.toProto(),
		Read:     &factstrv1.ReadOptions{Consistency: cons, MinSequenceNumber: in.MinSequenceNumber},
		PageSize: in.PageSize,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	page, err := st.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Internal, "the query ended without a page")
		}
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	lastReturned, version := page.GetLastReturnedSequenceNumber(), page.GetCurrentContextVersion()
	buf := append(make([]byte, 0, 64<<10), `{"events":[`...)
	n := 0
	for {
		for _, ev := range page.GetEvents() {
			if n > 0 {
				buf = append(buf, ',')
			}
			n++
			buf = appendMessage(buf, ev.ProtoReflect())
			if len(buf) >= 32<<10 {
				_ = rc.SetWriteDeadline(time.Now().Add(a.cfg.WriteStallTimeout))
				if _, werr := w.Write(buf); werr != nil {
					return // the client is gone; the context ends the call
				}
				buf = buf[:0]
			}
		}
		page, err = st.Recv()
		if err != nil {
			break
		}
	}
	buf = append(buf, `],"last_returned_sequence_number":`...)
	buf = strconv.AppendUint(buf, lastReturned, 10)
	buf = append(buf, `,"current_context_version":`...)
	buf = strconv.AppendUint(buf, version, 10)
	switch {
	case errors.Is(err, io.EOF):
		buf = append(buf, `,"complete":true}`...)
	case status.Code(err) == codes.ResourceExhausted:
		buf = append(buf, `,"complete":false}`...)
	default:
		// Too late for a status: the result is marked incomplete and
		// carries the error.
		e := toAPIError(err)
		buf = append(buf, `,"complete":false,`...)
		buf = append(buf, e.body[1:len(e.body)-1]...) // "error":{...}}
	}
	_ = rc.SetWriteDeadline(time.Now().Add(a.cfg.WriteStallTimeout))
	_, _ = w.Write(append(buf, '\n'))
}
