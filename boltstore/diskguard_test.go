package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
)

func TestEmbeddedFreeDiskWatermark(t *testing.T) {
	tests := []struct {
		name    string
		minFree uint64
		noSpace bool
	}{
		{"off", 0, false},
		{"room to spare", 1, false},
		{"more than any disk has", 1 << 62, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := boltstore.Open(filepath.Join(t.TempDir(), "e.db"), boltstore.WithMinFreeDisk(tt.minFree))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ev := []contract.NewEvent{{Type: "t", Payload: []byte(`{}`)}}
			_, err = s.Append(context.Background(), ev)
			if errors.Is(err, boltstore.ErrNoSpace) != tt.noSpace {
				t.Fatalf("Append: %v, want no space %v", err, tt.noSpace)
			}
			_, err = s.AppendIf(context.Background(), ev, contract.EventQuery{}, s.Replica().Head())
			if errors.Is(err, boltstore.ErrNoSpace) != tt.noSpace {
				t.Fatalf("AppendIf: %v, want no space %v", err, tt.noSpace)
			}
			if tt.noSpace && s.Replica().Head() != 0 {
				t.Fatalf("head %d after refused appends", s.Replica().Head())
			}
		})
	}
}
