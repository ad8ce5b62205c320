package configerr

import (
	"errors"
	"fmt"
	"testing"
)

func TestError(t *testing.T) {
	errA := errors.New("a: invalid config")
	errB := errors.New("b: invalid config")
	tests := []struct {
		name     string
		err      error
		wantMsg  string
		is, isnt error
	}{
		{"direct", New(errA, "Field", "is bad; fix it"), "a: invalid config: Field: is bad; fix it", errA, errB},
		{"wrapped", fmt.Errorf("start: %w", New(errB, "Join[1]", "has no host")), "start: b: invalid config: Join[1]: has no host", errB, errA},
		{"joined", errors.Join(New(errA, "X", "x"), New(errA, "Y", "y")), "a: invalid config: X: x\na: invalid config: Y: y", errA, errB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tt.wantMsg)
			}
			if !errors.Is(tt.err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
			if errors.Is(tt.err, tt.isnt) {
				t.Errorf("errors.Is(err, %v) = true", tt.isnt)
			}
			var ce *Error
			if !errors.As(tt.err, &ce) || ce.Field == "" {
				t.Errorf("errors.As found no *Error with a field")
			}
		})
	}
}
