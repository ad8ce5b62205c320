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
