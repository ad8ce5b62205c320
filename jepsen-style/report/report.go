// Package report renders a checked run as a text summary and a
// self-contained HTML page (inline SVG, no external assets).
package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/factstr/factstr-go/jepsen-style/checker"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

// Data is everything a report shows.
type Data struct {
	Title    string
	Config   string // JSON of the run configuration
	Ops      []history.Op
	Result   *checker.Result
	Notes    []string
	Verdict  string
	Duration float64 // s
}

// Counts per op kind and outcome.
func counts(ops []history.Op) map[string]map[string]int {
	m := map[string]map[string]int{}
	for _, o := range ops {
		if o.F == history.FNemesis {
			continue
		}
		if m[o.F] == nil {
			m[o.F] = map[string]int{}
		}
		m[o.F][o.Type]++
	}
	return m
}

// Text writes the summary.
func Text(w io.Writer, d Data) {
	fmt.Fprintf(w, "%s\n%s\n", d.Title, strings.Repeat("=", len(d.Title)))
	fmt.Fprintf(w, "verdict: %s\n\n", d.Verdict)
	c := counts(d.Ops)
	kinds := make([]string, 0, len(c))
	for k := range c {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "operations (%.0f s):\n", d.Duration)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-12s ok %5d  fail %5d  info %5d\n", k, c[k][history.OK], c[k][history.Fail], c[k][history.Info])
	}
	fmt.Fprintln(w, "\nfaults:")
	for _, win := range checker.Windows(d.Ops) {
		fmt.Fprintf(w, "  %6.1fs–%6.1fs  %s\n", float64(win.Start)/1e9, float64(win.End)/1e9, win.Fault)
	}
	fmt.Fprintln(w, "\ncheckers:")
	for _, ch := range d.Result.Checks {
		mark := "ok  "
		if ch.Anomalies > 0 {
			mark = "FAIL"
		}
		note := ""
		if ch.Note != "" {
			note = " (" + ch.Note + ")"
		}
		fmt.Fprintf(w, "  %s %s: %d checked, %d anomalies%s\n", mark, ch.Name, ch.Checked, ch.Anomalies, note)
	}
	for _, p := range d.Result.Porcupine {
		fmt.Fprintf(w, "       porcupine %-10s %5d ops: %s\n", p.Name, p.Ops, p.Result)
	}
	for _, n := range d.Result.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(d.Result.Anomalies) > 0 {
		fmt.Fprintf(w, "\nanomalies (%d):\n", len(d.Result.Anomalies))
		kinds := d.Result.Kinds()
		for k, n := range kinds {
			fmt.Fprintf(w, "  %s: %d\n", k, n)
		}
		for i, a := range d.Result.Anomalies {
			if i == 20 {
				fmt.Fprintf(w, "  ... %d more in results.json\n", len(d.Result.Anomalies)-20)
				break
			}
			fmt.Fprintf(w, "\n  [%s] %s\n", a.Kind, a.Explain)
			if a.Fault != "" {
				fmt.Fprintf(w, "    during: %s\n", a.Fault)
			}
			for _, o := range a.Ops {
				fmt.Fprintf(w, "    %s\n", o)
			}
		}
	}
}

var colors = map[string]string{
	history.FAppend: "#1f77b4", history.FAppendIf: "#ff7f0e", history.FQuery: "#2ca02c", history.FTail: "#9467bd",
	history.FLocalQuery: "#8c564b", history.FDeliver: "#e377c2", history.FFinalRead: "#17becf", history.FSubscribe: "#7f7f7f",
}

const (
	pw, ph       = 1100.0, 320.0
	left, bottom = 60.0, 30.0
)

func shade(b *strings.Builder, wins []checker.Window, tmax float64, xs func(float64) float64, h float64) {
	for _, w := range wins {
		s, e := float64(w.Start)/1e9, math.Min(float64(w.End)/1e9, tmax)
		fmt.Fprintf(b, `<rect x="%.1f" y="0" width="%.1f" height="%.1f" fill="#f4a" fill-opacity="0.15"><title>%s</title></rect>`, xs(s), math.Max(1, xs(e)-xs(s)), h, html.EscapeString(w.Fault))
		fmt.Fprintf(b, `<text x="%.1f" y="12" font-size="10" fill="#a05">%s</text>`, xs(s)+2, html.EscapeString(trunc(w.Fault, 28)))
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func axes(b *strings.Builder, tmax float64, xs func(float64) float64, ylabels [][2]string, yl string) {
	fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, left, ph-bottom, pw, ph-bottom)
	fmt.Fprintf(b, `<line x1="%.0f" y1="0" x2="%.0f" y2="%.0f" stroke="#333"/>`, left, left, ph-bottom)
	step := math.Max(1, math.Ceil(tmax/20))
	for t := 0.0; t <= tmax; t += step {
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%.0fs</text>`, xs(t), ph-bottom+14, t)
	}
	for _, l := range ylabels {
		fmt.Fprintf(b, `<text x="%.0f" y="%s" font-size="10" text-anchor="end">%s</text>`, left-4, l[0], l[1])
	}
	fmt.Fprintf(b, `<text x="4" y="14" font-size="11">%s</text>`, yl)
}

// HTML writes the page.
func HTML(w io.Writer, d Data) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=utf-8><title>%s</title><style>body{font-family:sans-serif;margin:20px;max-width:1200px}pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}td,th{padding:2px 8px;text-align:left}.bad{color:#b00}.good{color:#070}</style></head><body>", html.EscapeString(d.Title))
	cls := "good"
	if strings.Contains(d.Verdict, "FAIL") || strings.Contains(d.Verdict, "anomal") && !strings.Contains(d.Verdict, "no anomal") {
		cls = "bad"
	}
	fmt.Fprintf(&b, "<h1>%s</h1><h2 class=%s>%s</h2>", html.EscapeString(d.Title), cls, html.EscapeString(d.Verdict))
	fmt.Fprintf(&b, "<h3>Configuration</h3><pre>%s</pre>", html.EscapeString(d.Config))

	tmax := 1.0
	for _, o := range d.Ops {
		if o.Return != math.MaxInt64 {
			tmax = math.Max(tmax, float64(o.Return)/1e9)
		}
	}
	xs := func(t float64) float64 { return left + (pw-left)*t/tmax }
	wins := checker.Windows(d.Ops)

	// latency scatter, log scale 1ms..10s
	b.WriteString("<h3>Latency over time (log scale; ● ok, × fail, ▲ unknown; shaded: faults)</h3>")
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">`, pw, ph)
	shade(&b, wins, tmax, xs, ph-bottom)
	ly := func(ms float64) float64 {
		v := math.Log10(math.Max(0.1, math.Min(ms, 10000)))
		return (ph - bottom) - (ph-bottom-20)*(v+1)/5
	}
	axes(&b, tmax, xs, [][2]string{{fmt.Sprintf("%.0f", ly(1)), "1ms"}, {fmt.Sprintf("%.0f", ly(10)), "10ms"}, {fmt.Sprintf("%.0f", ly(100)), "100ms"}, {fmt.Sprintf("%.0f", ly(1000)), "1s"}, {fmt.Sprintf("%.0f", ly(10000)), "10s"}}, "latency")
	for _, o := range d.Ops {
		if o.F == history.FNemesis || o.F == history.FSubscribe || o.F == history.FDeliver || o.Return == math.MaxInt64 {
			continue
		}
		x, y := xs(float64(o.Call)/1e9), ly(float64(o.Return-o.Call)/1e6)
		c := colors[o.F]
		switch o.Type {
		case history.OK:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.6" fill="%s" fill-opacity="0.6"/>`, x, y, c)
		case history.Fail:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl4 4m0 -4l-4 4" stroke="%s"/>`, x-2, y-2, c)
		default:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl3 5h-6z" fill="%s"/>`, x, y-3, c)
		}
	}
	b.WriteString("</svg>")
	legend(&b)

	// throughput per second by kind
	b.WriteString("<h3>Throughput (completed ok operations per second, by kind; shaded: faults)</h3>")
	nb := int(tmax) + 1
	per := map[string][]int{}
	peak := 1
	for _, o := range d.Ops {
		if o.Type != history.OK || o.F == history.FNemesis || o.F == history.FSubscribe {
			continue
		}
		if per[o.F] == nil {
			per[o.F] = make([]int, nb)
		}
		s := int(float64(o.Return) / 1e9)
		if s < nb {
			per[o.F][s]++
			peak = max(peak, per[o.F][s])
		}
	}
	fmt.Fprintf(&b, `<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">`, pw, ph)
	shade(&b, wins, tmax, xs, ph-bottom)
	yt := func(v float64) float64 { return (ph - bottom) - (ph-bottom-20)*v/float64(peak) }
	axes(&b, tmax, xs, [][2]string{{fmt.Sprintf("%.0f", yt(0)), "0"}, {fmt.Sprintf("%.0f", yt(float64(peak)/2)), fmt.Sprint(peak / 2)}, {fmt.Sprintf("%.0f", yt(float64(peak))), fmt.Sprint(peak)}}, "ops/s")
	keys := make([]string, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var pts []string
		for s, v := range per[k] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(float64(s)+0.5), yt(float64(v))))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.Join(pts, " "), colors[k])
	}
	b.WriteString("</svg>")
	legend(&b)

	// counts
	b.WriteString("<h3>Operations</h3><table><tr><th>kind</th><th>ok</th><th>fail</th><th>unknown</th></tr>")
	c := counts(d.Ops)
	for _, k := range sortedKeys(c) {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>", k, c[k][history.OK], c[k][history.Fail], c[k][history.Info])
	}
	b.WriteString("</table><h3>Faults</h3><table><tr><th>start</th><th>end</th><th>fault</th></tr>")
	for _, win := range wins {
		fmt.Fprintf(&b, "<tr><td>%.1fs</td><td>%.1fs</td><td>%s</td></tr>", float64(win.Start)/1e9, float64(win.End)/1e9, html.EscapeString(win.Fault))
	}
	b.WriteString("</table><h3>Checkers</h3><table><tr><th>checker</th><th>checked</th><th>anomalies</th><th>note</th></tr>")
	for _, ch := range d.Result.Checks {
		cl := "good"
		if ch.Anomalies > 0 {
			cl = "bad"
		}
		fmt.Fprintf(&b, "<tr class=%s><td>%s</td><td>%d</td><td>%d</td><td>%s</td></tr>", cl, html.EscapeString(ch.Name), ch.Checked, ch.Anomalies, html.EscapeString(ch.Note))
	}
	for _, p := range d.Result.Porcupine {
		fmt.Fprintf(&b, "<tr><td>&nbsp;&nbsp;porcupine partition %s</td><td>%d</td><td>%s</td><td></td></tr>", html.EscapeString(p.Name), p.Ops, p.Result)
	}
	b.WriteString("</table>")
	for _, n := range d.Result.Notes {
		fmt.Fprintf(&b, "<p>note: %s</p>", html.EscapeString(n))
	}
	fmt.Fprintf(&b, "<h3>Anomalies (%d)</h3>", len(d.Result.Anomalies))
	for i, a := range d.Result.Anomalies {
		if i == 200 {
			fmt.Fprintf(&b, "<p>… %d more in results.json</p>", len(d.Result.Anomalies)-200)
			break
		}
		fmt.Fprintf(&b, "<div><b class=bad>%s</b> <i>(%s)</i><br>%s", html.EscapeString(a.Kind), html.EscapeString(a.Checker), html.EscapeString(a.Explain))
		if a.Fault != "" {
			fmt.Fprintf(&b, "<br>active fault: %s", html.EscapeString(a.Fault))
		}
		fmt.Fprintf(&b, "<pre>%s</pre></div>", html.EscapeString(strings.Join(a.Ops, "\n")))
	}
	fmt.Fprintf(&b, "<h3>Run log</h3><pre>%s</pre></body></html>", html.EscapeString(strings.Join(d.Notes, "\n")))
	io.WriteString(w, b.String())
}

func sortedKeys(m map[string]map[string]int) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func legend(b *strings.Builder) {
	b.WriteString("<div style='font-size:12px'>")
	for _, k := range []string{history.FAppend, history.FAppendIf, history.FQuery, history.FTail, history.FLocalQuery, history.FDeliver, history.FFinalRead} {
		fmt.Fprintf(b, "<span style='color:%s'>■ %s</span> &nbsp;", colors[k], k)
	}
	b.WriteString("</div>")
}
