package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/internal/metrics"
)

func TestPprofHidesTheCommandLine(t *testing.T) {
	srv := httptest.NewServer(metrics.New().Handler(true))
	defer srv.Close()
	tests := []struct {
		path     string
		wantCode int
	}{
		{"/debug/pprof/cmdline", http.StatusNotFound},
		{"/debug/pprof/goroutine?debug=1", http.StatusOK},
		{"/metrics", http.StatusOK},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode {
			t.Fatalf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.wantCode)
		}
		if strings.HasPrefix(tt.path, "/debug/pprof/cmdline") && strings.Contains(string(body), "-test.") {
			t.Fatalf("GET %s shows the command line: %q", tt.path, body)
		}
	}
}
