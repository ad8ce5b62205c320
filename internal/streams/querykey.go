package streams

import (
	"encoding/json"
	"fmt"

	"github.com/factstr/factstr-go/contract"
)

// QueryKey returns a canonical encoding of q's filters (MinSequenceNumber
// left out) so a durable name can tell "the same query" from "a changed
// query" however the caller spelled its predicates: object keys are sorted
// and white space dropped, while nil and empty lists stay distinct because
// they mean different things.
func QueryKey(q contract.EventQuery) (string, error) {
	type filter struct {
		Types []string `json:"t"`
		Preds []any    `json:"p"`
	}
	fs := make([]filter, 0, len(q.Filters))
	for i, f := range q.Filters {
		cf := filter{Types: f.EventTypes}
		if f.PayloadPredicates != nil {
			cf.Preds = make([]any, 0, len(f.PayloadPredicates))
			for j, p := range f.PayloadPredicates {
				v, err := contract.DecodeJSON(p)
				if err != nil {
					return "", fmt.Errorf("%w: filter %d payload predicate %d: %v", contract.ErrInvalidQuery, i, j, err)
				}
				cf.Preds = append(cf.Preds, v)
			}
		}
		fs = append(fs, cf)
	}
	b, err := json.Marshal(fs)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
