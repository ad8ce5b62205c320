package memstore_test

import (
	"testing"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/contract/conformance"
	"github.com/factstr/factstr-go/memstore"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) contract.EventStore { return memstore.New() })
}

func TestResultBound(t *testing.T) {
	limits := contract.DefaultLimits
	limits.MaxQueryBytes = 8 << 10
	conformance.RunResultBound(t, limits.MaxQueryBytes, func(t *testing.T) contract.EventStore {
		return memstore.New(memstore.WithLimits(limits))
	})
}
