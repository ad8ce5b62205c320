//go:build unix

package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BinaryEnv names an environment variable that, when set, points at a
// prebuilt factstr-node binary to use instead of building one.
const BinaryEnv = "FACTSTR_TEST_NODE_BIN"

// build is process-wide on purpose: every test of one test binary starts
// nodes from the same factstr-node, and building it once per process (not
// per test) keeps a package's tests from spending minutes in the linker.
var build struct {
	once sync.Once
	dir  string // temp dir holding the binary ("" with BinaryEnv)
	path string
	err  error
}

// Build builds ./cmd/factstr-node once per test process (CGO_ENABLED=0, into
// a temporary directory) and returns the binary's path. The module root is
// found by walking up from the working directory to go.mod. A failed build
// fails the test with the compiler's output.
//
// Call RemoveBuild from TestMain after m.Run to delete the binary.
func Build(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			abs, err := filepath.Abs(p)
			if err == nil {
				_, err = os.Stat(abs)
			}
			if err != nil {
				build.err = fmt.Errorf("%s=%q: %w", BinaryEnv, p, err)
			}
			build.path = abs
			return
		}
		build.path, build.dir, build.err = buildNode()
	})
	if build.err != nil {
		t.Fatalf("testcluster: build factstr-node: %v", build.err)
	}
	return build.path
}

// RemoveBuild deletes the binary Build made (not one given by BinaryEnv).
// Later Build calls in the same process fail.
func RemoveBuild() {
	build.once.Do(func() { build.err = errors.New("RemoveBuild was called before Build") })
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
		build.dir = ""
		build.err = errors.New("the binary was removed by RemoveBuild")
	}
}

func buildNode() (path, dir string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if gr := os.Getenv("GOROOT"); gr != "" {
			goBin = filepath.Join(gr, "bin", "go")
		} else {
			return "", "", fmt.Errorf("the go command is not on PATH: %w", err)
		}
	}
	dir, err = os.MkdirTemp("", "factstr-testcluster-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "factstr-node")
	cmd := exec.Command(goBin, "build", "-o", path, "./cmd/factstr-node")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build ./cmd/factstr-node in %s (%v): %w\n%s", root, time.Since(start).Round(time.Millisecond), err, out.String())
	}
	return path, dir, nil
}

// ModuleRoot returns the directory holding go.mod, walking up from the
// working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", dir)
		}
		d = parent
	}
}
