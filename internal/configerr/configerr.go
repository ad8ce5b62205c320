// Package configerr holds the one error type the module's Config.Validate
// methods (raftlog, membership, cluster) return for a wrong field: it names the
// field and says how to fix it, and unwraps to the package's own
// ErrInvalidConfig sentinel so callers branch with errors.Is on the
// package they configured.
package configerr

import "fmt"

// Error names the field that is wrong and says how to fix it.
type Error struct {
	Kind   error  // the package's sentinel, e.g. raftlog.ErrInvalidConfig
	Field  string // the field, e.g. "ElectionTimeout" or "Join[1]"
	Reason string // what is wrong and what to do about it
}

// New returns an *Error of kind for field.
func New(kind error, field, reason string) *Error {
	return &Error{Kind: kind, Field: field, Reason: reason}
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Field, e.Reason)
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }
