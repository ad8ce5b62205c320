package contract

import (
	"errors"
	"testing"
)

func TestParseStartPosition(t *testing.T) {
	tests := []struct {
		in   string
		want StartPosition
		bad  bool
	}{
		{in: "beginning", want: StartPosition{Kind: StartBeginning}},
		{in: "Start", want: StartPosition{Kind: StartBeginning}},
		{in: "END", want: StartPosition{Kind: StartEnd}},
		{in: "42", want: StartPosition{Kind: StartAfterSequence, After: 42}},
		{in: "0", want: StartPosition{Kind: StartAfterSequence}},
		{in: "", bad: true},
		{in: "-1", bad: true},
		{in: "soon", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseStartPosition(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("ParseStartPosition(%q) = %v, %v; want ErrInvalidQuery", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStartPosition(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
