package streams

import (
	"fmt"
	"strings"

	"github.com/factstr/factstr-go/contract"
)

// StartCursor is the cursor a new durable name starts with when the log
// ends at head. Every store decides it where it records the name (in a
// cluster, when the Raft entry applies), so "the end" is the same on every
// replica.
func StartCursor(start contract.StartPosition, head uint64) (uint64, error) {
	switch start.Kind {
	case contract.StartBeginning:
		return 0, nil
	case contract.StartEnd:
		return head, nil
	case contract.StartAfterSequence:
		if start.After > head {
			return 0, fmt.Errorf("%w: a durable stream cannot start after %d, the log ends at %d", contract.ErrPositionAhead, start.After, head)
		}
		return start.After, nil
	}
	return 0, start.Validate()
}

// QueryMismatch is the error for subscribing to name with a query other
// than stored, the one it was created with; it names the stored query so
// the caller can subscribe with it, or reset or delete the name.
func QueryMismatch(name string, stored contract.EventQuery) error {
	return fmt.Errorf("%w: %q has the query %s", contract.ErrDurableQueryMismatch, name, FormatQuery(stored))
}

// FormatQuery renders a query's filters for people: "every event", or the
// filters joined by OR, each its types AND its payload predicates.
func FormatQuery(q contract.EventQuery) string {
	if len(q.Filters) == 0 {
		return "every event"
	}
	parts := make([]string, len(q.Filters))
	for i, f := range q.Filters {
		var terms []string
		switch {
		case f.EventTypes == nil:
		case len(f.EventTypes) == 0:
			terms = append(terms, "no type")
		default:
			terms = append(terms, "type "+strings.Join(f.EventTypes, "|"))
		}
		switch {
		case f.PayloadPredicates == nil:
		case len(f.PayloadPredicates) == 0:
			terms = append(terms, "no payload")
		default:
			ps := make([]string, len(f.PayloadPredicates))
			for j, p := range f.PayloadPredicates {
				ps[j] = string(p)
			}
			terms = append(terms, "payload "+strings.Join(ps, "|"))
		}
		if len(terms) == 0 {
			terms = []string{"any event"}
		}
		parts[i] = "(" + strings.Join(terms, " AND ") + ")"
	}
	return strings.Join(parts, " OR ")
}

// HeldRefusal is the error for a reset or delete of a held name without
// force.
func HeldRefusal(what, name, holder string) error {
	return fmt.Errorf("%w: %q is held by %s; unsubscribe it first, or %s with force (its holder loses the name)",
		contract.ErrDurableNameInUse, name, holder, what)
}
