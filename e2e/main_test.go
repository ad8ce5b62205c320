//go:build unix

package e2e

import (
	"os"
	"testing"

	"github.com/factstr/factstr-go/internal/testcluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcluster.RemoveBuild()
	os.Exit(code)
}
