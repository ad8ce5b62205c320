package checker

import "github.com/factstr/factstr-go/jepsen-style/history"

// membership reports every membership promise the nemesis saw broken: a
// removed node added back while it kept running, or a re-added node that
// never became a caught-up voter.
func (r *run) membership() {
	c := r.checker("membership")
	for _, o := range r.ops {
		if o.F != history.FMemberCheck {
			continue
		}
		c.n++
		if o.Type != history.Fail {
			continue
		}
		c.anomaly("membership", o.Call, "a membership change did not behave as documented: "+o.Result.Fault+" ("+o.Err+")", o)
	}
	c.done()
}
