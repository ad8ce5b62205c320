package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// AssetPrefix is the path under which the page's scripts and styles are
// served; the page itself is at "/".
const AssetPrefix = "/ui/"

//go:embed static
var static embed.FS

// The policy allows this origin only: the page loads its own script and
// stylesheet and talks to the node's API, nothing else, and no inline
// script can run even if a payload shown on the page were crafted to try.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console: GET / (and HEAD) answers the page, GET
// /ui/<file> its assets. Any other path is 404 and any other method 405, so
// the API server can mount it on "/" and "/ui/" next to its /v1 routes.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embed directive guarantees the directory; failing here is a
		// build defect, not a runtime condition.
		panic("console: embedded assets missing: " + err.Error())
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic("console: embedded index.html missing: " + err.Error())
	}
	assets := http.StripPrefix(AssetPrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Assets are embedded in the binary: an upgraded node must not be
		// shown with the previous version's script.
		h.Set("Cache-Control", "no-cache")
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			h.Set("Content-Type", "text/html; charset=utf-8")
			if r.Method == http.MethodHead {
				return
			}
			_, _ = w.Write(index)
		case strings.HasPrefix(p, AssetPrefix) && !strings.HasSuffix(p, "/") && p != AssetPrefix+"index.html":
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
