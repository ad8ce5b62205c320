package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser tests drive a real headless Chromium. Where none is installed
// they skip, except in CI (CI set) or with FACTSTR_REQUIRE_BROWSER=1, where
// a missing browser fails: CI must never pass by skipping them.

const (
	browserStartTimeout = 60 * time.Second
	actionTimeout       = 15 * time.Second
	pollEvery           = 200 * time.Millisecond
)

func browserRequired() bool {
	return os.Getenv("CI") != "" || os.Getenv("FACTSTR_REQUIRE_BROWSER") == "1"
}

// chromiumPath finds the browser: $FACTSTR_CHROMIUM, else the names Debian
// and others install it under.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FACTSTR_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("FACTSTR_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found (looked for $FACTSTR_CHROMIUM, chromium, chromium-browser, google-chrome; install Debian's package: apt-get install -y chromium)"
	if browserRequired() {
		t.Fatalf("%s; CI or FACTSTR_REQUIRE_BROWSER=1 forbids skipping the browser test", msg)
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is where screenshots go: $FACTSTR_TEST_ARTIFACTS/<test name>,
// or a directory removed after the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("FACTSTR_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// page is one browser tab under test.
type page struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	shots int

	mu         sync.Mutex
	exceptions []string
}

// openBrowser starts headless Chromium (no sandbox: CI runs as root) and
// returns its tab; the browser is stopped at the end of the test.
func openBrowser(t *testing.T) *page {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	p := &page{t: t, ctx: ctx, dir: artifactsDir(t)}
	// The first Run starts the browser; a timeout on its context would stop
	// the browser later, so the start is bounded from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium (%s): %v", path, err)
		}
	case <-time.After(browserStartTimeout):
		cancelCtx()
		t.Fatalf("Chromium (%s) did not start within %v", path, browserStartTimeout)
	}
	// Uncaught exceptions of the page fail the test; other console output
	// (a refused request shows as an error entry) is logged.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() {
				p.mu.Lock()
				p.exceptions = append(p.exceptions, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	t.Logf("browser: %s; screenshots in %s", path, p.dir)
	return p
}

// do runs actions, bounded; a failure shows the page.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// text is the innerText of the first element matching the CSS selector, or
// a description of its absence.
func (p *page) text(sel string) string {
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : "<no element %s>"; })()`,
		strconv.Quote(sel), strings.ReplaceAll(sel, `"`, `'`))
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return fmt.Sprintf("<evaluate %s: %v>", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression that yields a string.
func (p *page) eval(js string) string {
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return fmt.Sprintf("<evaluate: %v>", err)
	}
	return s
}

// waitText polls the text of sel until ok accepts it, for at most timeout,
// and fails with what the element and the page showed.
func (p *page) waitText(sel, what string, timeout time.Duration, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		s := p.text(sel)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.fail("waited %v for %s (%s); it shows %q", timeout, what, sel, s)
		}
		<-tick.C
	}
}

func (p *page) waitContains(sel, want string, timeout time.Duration) string {
	p.t.Helper()
	return p.waitText(sel, fmt.Sprintf("text containing %q", want), timeout, func(s string) bool { return strings.Contains(s, want) })
}

// shot saves a full-page screenshot and logs its path.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.shots++
	path := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.png", p.shots, name))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// fail records the page (screenshot and visible text) and stops the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	p.shot("failure")
	p.t.Fatalf("%s\n--- the page shows:\n%s", fmt.Sprintf(format, args...), p.text("body"))
}

// tab opens one of the console's views.
func (p *page) tab(name string) {
	p.t.Helper()
	p.do("open the "+name+" tab", chromedp.Click(chromedp.CSS(`#tabs a[data-tab="`+name+`"]`)))
	p.waitText(`section[data-view="`+name+`"]`, "the "+name+" view to show", actionTimeout, func(s string) bool {
		return !strings.HasPrefix(s, "<") && s != ""
	})
}

// set replaces the value of a form field.
func (p *page) set(id, value string) {
	p.t.Helper()
	// chromedp.SetValue refuses an empty value; the page reads .value only.
	js := fmt.Sprintf(`(() => { const e = document.getElementById(%s); if (!e) return "no element"; e.value = %s; return e.value === %s ? "ok" : "value not taken"; })()`,
		strconv.Quote(id), strconv.Quote(value), strconv.Quote(value))
	if got := p.eval(js); got != "ok" {
		p.fail("fill #%s with %q: %s", id, value, got)
	}
}

func (p *page) click(id string) {
	p.t.Helper()
	p.do("click #"+id, chromedp.Click(chromedp.ID(id)))
}
