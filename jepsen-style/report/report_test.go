package report

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/factstr/factstr-go/jepsen-style/checker"
	"github.com/factstr/factstr-go/jepsen-style/history"
)

const sec = int64(1e9)

// ops is a small run: a kill from 2 s to 4 s, appends with every outcome,
// a query, and the final read of n1, which lacks the event the
// append acknowledged at seq 2 (a lost write).
func ops() []history.Op {
	return []history.Op{
		{ID: 0, Proc: -1, Worker: "nemesis", F: history.FNemesis, Type: history.OK, Call: 2 * sec, Return: 4 * sec,
			Args: history.Value{Fault: "kill"}, Result: history.Value{Fault: "SIGKILL n2"}},
		{ID: 1, Proc: 1, Worker: "w0", Node: "n1", F: history.FAppend, Type: history.OK, Call: 1 * sec, Return: 1*sec + 5e6,
			Args: history.Value{Ctx: "c0", IDs: []string{"a"}}, Result: history.Value{First: 1, Last: 1}},
		{ID: 2, Proc: 1, Worker: "w0", Node: "n1", F: history.FAppend, Type: history.OK, Call: 3 * sec, Return: 3*sec + 5e6,
			Args: history.Value{Ctx: "c0", IDs: []string{"b"}}, Result: history.Value{First: 2, Last: 2}},
		{ID: 3, Proc: 2, Worker: "w1", Node: "n2", F: history.FAppend, Type: history.Fail, Call: 3 * sec, Return: 3*sec + 1e6,
			Args: history.Value{Ctx: "c1", IDs: []string{"c"}}, Err: "invalid"},
		{ID: 4, Proc: 3, Worker: "w2", Node: "n2", F: history.FAppend, Type: history.Info, Call: 3 * sec, Return: math.MaxInt64,
			Args: history.Value{Ctx: "c1", IDs: []string{"d"}}},
		{ID: 7, Proc: 5, Worker: "w4", Node: "n3", F: history.FAppend, Type: history.Info, Call: 3 * sec, Return: 3*sec + 9e8,
			Args: history.Value{Ctx: "c1", IDs: []string{"e"}}, Err: "deadline exceeded"},
		{ID: 5, Proc: 4, Worker: "w3", Node: "n3", F: history.FQuery, Type: history.OK, Call: 5 * sec, Return: 5*sec + 2e6,
			Args: history.Value{Ctx: "c0"}, Result: history.Value{CV: 1, LR: 1, Events: []history.Event{{Seq: 1, ID: "a", Ctx: "c0"}}}},
		{ID: 6, Proc: 9, Worker: "final", Node: "n1", F: history.FFinalRead, Type: history.OK, Call: 6 * sec, Return: 6*sec + 1e6,
			Result: history.Value{Events: []history.Event{{Seq: 1, ID: "a", Ctx: "c0"}}}},
	}
}

func lines(s string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		m[l] = true
	}
	return m
}

func TestTextLayout(t *testing.T) {
	res := &checker.Result{
		Checks: []checker.CheckSummary{
			{Name: "durability", Checked: 3, Anomalies: 1, Note: "0 indefinite appends resolved"},
			{Name: "reads", Checked: 1},
		},
		Porcupine: []checker.PartitionResult{{Name: "c0", Ops: 2, Result: "linearizable"}},
		Notes:     []string{"one final read"},
		Anomalies: []checker.Anomaly{{Kind: "lost-write", Checker: "durability", Explain: "seq 2 lost", Fault: "SIGKILL n2 [2.0s–4.0s]", Ops: []string{"op#2 append ok"}}},
	}
	var b strings.Builder
	Text(&b, Data{Title: "smoke run", Ops: ops(), Result: res, Verdict: "FAIL: 1 anomaly", Duration: 6.4})
	out := b.String()
	got := lines(out)
	for _, want := range []string{
		"smoke run",
		"=========",
		"verdict: FAIL: 1 anomaly",
		"operations (6 s):",
		"  append       ok     2  fail     1  info     2",
		"  final_read   ok     1  fail     0  info     0",
		"  query        ok     1  fail     0  info     0",
		"     2.0s–   4.0s  SIGKILL n2",
		"  FAIL durability: 3 checked, 1 anomalies (0 indefinite appends resolved)",
		"  ok   reads: 1 checked, 0 anomalies",
		"       porcupine c0             2 ops: linearizable",
		"  note: one final read",
		"anomalies (1):",
		"  lost-write: 1",
		"  [lost-write] seq 2 lost",
		"    during: SIGKILL n2 [2.0s–4.0s]",
		"    op#2 append ok",
	} {
		if !got[want] {
			t.Errorf("summary lacks the line %q", want)
		}
	}
	if strings.Contains(out, "nemesis ") {
		t.Errorf("nemesis ops counted as operations:\n%s", out)
	}
	// Kinds appear in sorted order in the operations table.
	if strings.Index(out, "  append ") > strings.Index(out, "  final_read ") || strings.Index(out, "  final_read ") > strings.Index(out, "  query ") {
		t.Errorf("operation kinds not sorted:\n%s", out)
	}
}

func TestTextNoAnomalies(t *testing.T) {
	var b strings.Builder
	Text(&b, Data{Title: "t", Result: &checker.Result{Checks: []checker.CheckSummary{{Name: "reads", Checked: 4}}}, Verdict: "PASS"})
	if strings.Contains(b.String(), "anomalies (") || strings.Contains(b.String(), "FAIL") {
		t.Fatalf("anomaly section in a clean summary:\n%s", b.String())
	}
}

func TestTextTruncatesAnomalies(t *testing.T) {
	res := &checker.Result{}
	for i := 0; i < 23; i++ {
		res.Anomalies = append(res.Anomalies, checker.Anomaly{Kind: "stale-read", Explain: fmt.Sprintf("read %d", i)})
	}
	var b strings.Builder
	Text(&b, Data{Title: "t", Result: res})
	out := b.String()
	if !strings.Contains(out, "  ... 3 more in results.json\n") || !strings.Contains(out, "[stale-read] read 19\n") || strings.Contains(out, "read 20\n") {
		t.Fatalf("want the first 20 anomalies and a '3 more' line:\n%s", out)
	}
	if !strings.Contains(out, "  stale-read: 23\n") {
		t.Fatalf("kind count missing:\n%s", out)
	}
}

// TestTextFromChecker renders what the checker finds in ops(): the lost
// write is reported with the fault active when it was acknowledged.
func TestTextFromChecker(t *testing.T) {
	o := ops()
	res := checker.Check(o, checker.Options{SkipPorcupine: true})
	if res.Kinds()["lost-write"] != 1 {
		t.Fatalf("checker found %v, want one lost-write", res.Kinds())
	}
	var b strings.Builder
	Text(&b, Data{Title: "t", Ops: o, Result: res, Verdict: "FAIL"})
	out := b.String()
	for _, want := range []string{"\n  lost-write: 1\n", "\n  [lost-write] acknowledged append (seq 2–2) lost 1 of 1 events ([b])", "    during: SIGKILL n2", "    op#2 append ok by w0 on n1"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "\n  FAIL durability") {
		t.Errorf("durability checker not marked FAIL:\n%s", out)
	}
}

func TestHTML(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict string
		cls     string
	}{
		{"fail", "FAIL: 1 anomaly", "bad"},
		{"anomalies", "3 anomalies", "bad"},
		{"clean", "PASS: no anomalies", "good"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &checker.Result{
				Checks:    []checker.CheckSummary{{Name: "durability", Checked: 3, Anomalies: 1}, {Name: "reads <all>", Checked: 1}},
				Anomalies: []checker.Anomaly{{Kind: "lost-write", Checker: "durability", Explain: "lost <b>", Fault: "kill & pause", Ops: []string{"op#2 <x>"}}},
			}
			var b strings.Builder
			HTML(&b, Data{Title: "run <1>", Config: `{"a":"<b>"}`, Ops: ops(), Result: res, Verdict: tc.verdict, Notes: []string{"note <n>"}})
			out := b.String()
			for _, want := range []string{
				"<title>run &lt;1&gt;</title>",
				fmt.Sprintf("<h2 class=%s>%s</h2>", tc.cls, tc.verdict),
				"<pre>{&#34;a&#34;:&#34;&lt;b&gt;&#34;}</pre>",
				"<tr><td>append</td><td>2</td><td>1</td><td>2</td></tr>",
				"<tr><td>2.0s</td><td>4.0s</td><td>SIGKILL n2</td></tr>",
				"<tr class=bad><td>durability</td><td>3</td><td>1</td>",
				"<tr class=good><td>reads &lt;all&gt;</td>",
				"<h3>Anomalies (1)</h3>",
				"<b class=bad>lost-write</b> <i>(durability)</i><br>lost &lt;b&gt;<br>active fault: kill &amp; pause<pre>op#2 &lt;x&gt;</pre>",
				"<pre>note &lt;n&gt;</pre></body></html>",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if strings.Contains(out, "<td>nemesis</td>") {
				t.Error("nemesis ops in the operations table")
			}
			if n := strings.Count(out, "<svg "); n != 2 {
				t.Errorf("%d charts, want 2", n)
			}
		})
	}
}

func TestHTMLTruncatesAnomalies(t *testing.T) {
	res := &checker.Result{}
	for i := 0; i < 205; i++ {
		res.Anomalies = append(res.Anomalies, checker.Anomaly{Kind: "stale-read"})
	}
	var b strings.Builder
	HTML(&b, Data{Title: "t", Result: res})
	out := b.String()
	if n := strings.Count(out, "<b class=bad>stale-read</b>"); n != 200 {
		t.Errorf("%d anomalies shown, want 200", n)
	}
	if !strings.Contains(out, "<p>… 5 more in results.json</p>") || !strings.Contains(out, "<h3>Anomalies (205)</h3>") {
		t.Error("no '5 more' line or wrong count heading")
	}
}
