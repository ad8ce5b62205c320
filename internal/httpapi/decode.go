package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// The request bodies. Payloads and predicates are json.RawMessage so that
// their bytes reach the store unchanged; pointers to slices tell an absent
// list (nil) from a present, empty one.
type (
	eventJSON struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	filterJSON struct {
		EventTypes        *[]string          `json:"event_types"`
		PayloadPredicates *[]json.RawMessage `json:"payload_predicates"`
	}
	queryJSON struct {
		Filters           []filterJSON `json:"filters"`
		MinSequenceNumber uint64       `json:"min_sequence_number"`
	}
	appendJSON struct {
		Events         []eventJSON `json:"events"`
		IdempotencyKey string      `json:"idempotency_key"`
	}
	appendIfJSON struct {
		Events                 []eventJSON `json:"events"`
		Context                *queryJSON  `json:"context"`
		ExpectedContextVersion uint64      `json:"expected_context_version"`
		IdempotencyKey         string      `json:"idempotency_key"`
	}
	queryRequestJSON struct {
		Query             *queryJSON `json:"query"`
		Consistency       string     `json:"consistency"`
		MinSequenceNumber uint64     `json:"min_sequence_number"`
		PageSize          uint32     `json:"page_size"`
	}
	streamRequestJSON struct {
		Query       *queryJSON `json:"query"`
		After       *uint64    `json:"after"`
		CatchUp     bool       `json:"catch_up"`
		Consistency string     `json:"consistency"`
	}
)

// errBadRequest marks a request the HTTP layer refuses before any gRPC
// call (INVALID_ARGUMENT, 400).
var errBadRequest = errors.New("bad request")

// errTooLarge marks a request body past the bound (413).
var errTooLarge = errors.New("request body too large")

// decodeBody decodes exactly one JSON value from the body into v, refusing
// unknown fields. An empty body is the empty object when emptyOK.
func decodeBody(r *http.Request, v any, emptyOK bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("%w: the body is empty; send a JSON object", errBadRequest)
	}
	return decodeJSON(b, v)
}

// readBody reads the whole (bounded) body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: the limit is %d bytes", errTooLarge, mbe.Limit)
		}
		return nil, fmt.Errorf("%w: reading the body: %w", errBadRequest, err)
	}
	return b, nil
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: invalid JSON: %w", errBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: invalid JSON: more than one value", errBadRequest)
	}
	return nil
}

func eventsToProto(evs []eventJSON) []*factstrv1.Event {
	out := make([]*factstrv1.Event, len(evs))
	for i, e := range evs {
		out[i] = &factstrv1.Event{Type: e.Type, Payload: e.Payload}
	}
	return out
}

// toProto maps a query; nil stays nil (the proto's "no query": all events).
func (q *queryJSON) toProto() *factstrv1.EventQuery {
	if q == nil {
		return nil
	}
	out := &factstrv1.EventQuery{MinSequenceNumber: q.MinSequenceNumber, Filters: make([]*factstrv1.EventFilter, len(q.Filters))}
	for i, f := range q.Filters {
		pf := &factstrv1.EventFilter{}
		if f.EventTypes != nil {
			pf.EventTypes = &factstrv1.StringList{Values: append([]string{}, *f.EventTypes...)}
		}
		if f.PayloadPredicates != nil {
			vals := make([][]byte, len(*f.PayloadPredicates))
			for j, p := range *f.PayloadPredicates {
				vals[j] = p
			}
			pf.PayloadPredicates = &factstrv1.BytesList{Values: vals}
		}
		out.Filters[i] = pf
	}
	return out
}

// consistency maps "", "linearizable" or "local".
func consistency(s string) (factstrv1.ReadConsistency, error) {
	switch strings.ToLower(s) {
	case "":
		return factstrv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, nil
	case "linearizable":
		return factstrv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE, nil
	case "local":
		return factstrv1.ReadConsistency_READ_CONSISTENCY_LOCAL, nil
	}
	return 0, fmt.Errorf("%w: consistency %q: want linearizable or local", errBadRequest, s)
}
