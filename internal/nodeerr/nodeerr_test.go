package nodeerr_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/internal/nodeerr"
	"github.com/factstr/factstr-go/internal/wire"
)

// sentinels names every error of the package; TestSentinelListIsComplete
// keeps it in step with the source, so the tests below cover a sentinel
// added later too.
var sentinels = map[string]error{
	"ErrNoLeader":       nodeerr.ErrNoLeader,
	"ErrOutcomeUnknown": nodeerr.ErrOutcomeUnknown,
	"ErrNotLeader":      nodeerr.ErrNotLeader,
	"ErrWrongNode":      nodeerr.ErrWrongNode,
	"ErrUnknownNode":    nodeerr.ErrUnknownNode,
	"ErrLastVoter":      nodeerr.ErrLastVoter,
	"ErrWrongCluster":   nodeerr.ErrWrongCluster,
	"ErrLeft":           nodeerr.ErrLeft,
}

func names() []string {
	var ns []string
	for n := range sentinels {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// TestSentinelListIsComplete: every exported Err variable declared in the
// package's source is in the table the other tests range over.
func TestSentinelListIsComplete(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	declared := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
						declared[n.Name] = true
					}
				}
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("found no Err variables in the package source")
	}
	for n := range declared {
		if _, ok := sentinels[n]; !ok {
			t.Errorf("nodeerr.%s is not in this test's sentinel table", n)
		}
	}
	for n := range sentinels {
		if !declared[n] {
			t.Errorf("the table names nodeerr.%s, which the source does not declare", n)
		}
	}
}

// TestSentinelsAreDistinct: callers branch with errors.Is, so no sentinel
// may match another, even with equal text; and each says something of its
// own in Go's error style (lower case, no trailing period).
func TestSentinelsAreDistinct(t *testing.T) {
	msgs := map[string]string{}
	for _, a := range names() {
		ea := sentinels[a]
		if ea == nil {
			t.Fatalf("%s is nil", a)
		}
		msg := ea.Error()
		if msg == "" || strings.ToLower(msg[:1]) != msg[:1] || strings.HasSuffix(msg, ".") {
			t.Errorf("%s: message %q: want non-empty, lower case, no trailing period", a, msg)
		}
		if other, dup := msgs[msg]; dup {
			t.Errorf("%s and %s have the same message %q", a, other, msg)
		}
		msgs[msg] = a
		for _, b := range names() {
			if got, want := errors.Is(ea, sentinels[b]), a == b; got != want {
				t.Errorf("errors.Is(%s, %s) = %v, want %v", a, b, got, want)
			}
		}
		// A new error with the same text is not the sentinel.
		if errors.Is(errors.New(msg), ea) {
			t.Errorf("errors.New(%q) matches %s", msg, a)
		}
	}
}

// TestSentinelsSurviveWrapping: the store wraps these errors with context
// (fmt.Errorf %w, several levels, errors.Join); callers must still find
// exactly the sentinel that was wrapped, and %v keeps its text.
func TestSentinelsSurviveWrapping(t *testing.T) {
	wraps := []struct {
		name string
		wrap func(error) error
	}{
		{"one level", func(e error) error { return fmt.Errorf("append: %w", e) }},
		{"three levels", func(e error) error {
			return fmt.Errorf("forward: %w", fmt.Errorf("n2: %w", fmt.Errorf("apply: %w", e)))
		}},
		{"joined with another error", func(e error) error { return errors.Join(errors.New("close log"), e) }},
		{"two wrapped", func(e error) error { return fmt.Errorf("%w (after %w)", e, errors.New("timeout")) }},
	}
	for _, w := range wraps {
		t.Run(w.name, func(t *testing.T) {
			for _, a := range names() {
				err := w.wrap(sentinels[a])
				if !strings.Contains(err.Error(), sentinels[a].Error()) {
					t.Errorf("%s wrapped: %q lost the sentinel's text", a, err)
				}
				for _, b := range names() {
					if got, want := errors.Is(err, sentinels[b]), a == b; got != want {
						t.Errorf("errors.Is(wrapped %s, %s) = %v, want %v", a, b, got, want)
					}
				}
			}
		})
	}
	// %v instead of %w formats the text but cuts the chain.
	if errors.Is(fmt.Errorf("append: %v", nodeerr.ErrNoLeader), nodeerr.ErrNoLeader) {
		t.Error("an error formatted without %w matches ErrNoLeader")
	}
}

// TestClusterReExportsTheSentinels: package cluster exports these errors
// under the same names for callers; they must be the very same values, or
// errors.Is against cluster.ErrX would miss what the store returns.
func TestClusterReExportsTheSentinels(t *testing.T) {
	exported := map[string]error{
		"ErrNoLeader":       cluster.ErrNoLeader,
		"ErrOutcomeUnknown": cluster.ErrOutcomeUnknown,
		"ErrNotLeader":      cluster.ErrNotLeader,
		"ErrWrongNode":      cluster.ErrWrongNode,
		"ErrUnknownNode":    cluster.ErrUnknownNode,
		"ErrLastVoter":      cluster.ErrLastVoter,
		"ErrWrongCluster":   cluster.ErrWrongCluster,
		"ErrLeft":           cluster.ErrLeft,
	}
	for _, n := range names() {
		c, ok := exported[n]
		if !ok {
			t.Errorf("cluster does not export %s", n)
			continue
		}
		if c != sentinels[n] {
			t.Errorf("cluster.%s is not nodeerr.%s", n, n)
		}
	}
}

// TestEverySentinelHasAStatus: the one error mapping (wire.ToStatus) gives
// each node error, wrapped as the store returns it, a gRPC code other than
// INTERNAL and an ErrorInfo reason, so that a client can tell them apart;
// a sentinel added without a mapping fails here.
func TestEverySentinelHasAStatus(t *testing.T) {
	for _, n := range names() {
		st := wire.ToStatus(fmt.Errorf("cluster: %w", sentinels[n]))
		if c := status.Code(st); c == codes.Internal || c == codes.Unknown || c == codes.OK {
			t.Errorf("ToStatus(%s) = %v, want a specific code", n, c)
		}
		if wire.Reason(st) == "" {
			t.Errorf("ToStatus(%s) has no ErrorInfo reason", n)
		}
		if msg := status.Convert(st).Message(); !strings.Contains(msg, sentinels[n].Error()) {
			t.Errorf("ToStatus(%s) message %q lost the error's text", n, msg)
		}
	}
}
