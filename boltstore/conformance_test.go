package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) contract.EventStore {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"), boltstore.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestResultBound(t *testing.T) {
	limits := contract.DefaultLimits
	limits.MaxQueryBytes = 8 << 10
	conformance.RunResultBound(t, limits.MaxQueryBytes, func(t *testing.T) contract.EventStore {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"), boltstore.WithLogger(quietLogger()), boltstore.WithLimits(limits))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
