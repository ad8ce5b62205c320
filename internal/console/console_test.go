package console_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/internal/console"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(console.Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path string
		status       int
		contentType  string // prefix
		body         string // substring
	}{
		{"GET", "/", 200, "text/html", `id="view-overview"`},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/index.html", 200, "text/html", `src="/ui/console.js"`},
		{"GET", "/ui/console.js", 200, "text/javascript", "/v1/status"},
		{"GET", "/ui/console.css", 200, "text/css", "body"},
		{"GET", "/ui/", 404, "", ""},
		{"GET", "/ui/index.html", 404, "", ""},
		{"GET", "/ui/missing.js", 404, "", ""},
		{"GET", "/v2/anything", 404, "", ""},
		{"POST", "/", 405, "", ""},
		{"DELETE", "/ui/console.js", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", res.StatusCode, tc.status, b)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %q…", ct, tc.contentType)
			}
			if !strings.Contains(string(b), tc.body) {
				t.Errorf("body does not contain %q", tc.body)
			}
			if tc.status == 200 {
				if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
					t.Errorf("Content-Security-Policy %q does not confine the page to its origin", csp)
				}
				if res.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Error("X-Content-Type-Options: nosniff missing")
				}
			}
		})
	}
}

// TestAssetsSelfContained: the console loads nothing from outside the node
// (no CDN, no external font) and every asset the page names is embedded.
func TestAssetsSelfContained(t *testing.T) {
	dir := "static"
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q: the console must load nothing from outside the node", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"/ui/console.js", "/ui/console.css"} {
		if !strings.Contains(string(index), ref) {
			t.Errorf("index.html does not reference %s", ref)
		}
		if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(ref, "/ui/"))); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
}
