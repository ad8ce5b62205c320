package membership

import (
	"fmt"
	"testing"
	"time"
)

// Every conflict is counted; per claimant only the 1st, 2nd, 4th, 8th, ...
// is reported.
func TestConflictLogReportsAtPowersOfTwo(t *testing.T) {
	var c conflictLog
	if !c.lastAt().IsZero() {
		t.Fatal("lastAt is set before any conflict")
	}
	now := time.Unix(5000, 0)
	var reported []uint64
	for range 9 {
		if _, reports, report := c.record("a", "10.0.0.2:7946", now); report {
			reported = append(reported, reports)
		}
	}
	if fmt.Sprint(reported) != "[1 2 4 8]" {
		t.Fatalf("reported at %v, want [1 2 4 8]", reported)
	}
	// Another claimant of the same NodeID is counted on its own.
	if total, reports, report := c.record("a", "10.0.0.3:7946", now); !report || reports != 1 || total != 10 {
		t.Fatalf("a second claimant: total %d, reports %d, reported %v; want 10, 1, true", total, reports, report)
	}
	if c.count() != 10 || !c.lastAt().Equal(now) {
		t.Fatalf("count %d, last %v; want 10, %v", c.count(), c.lastAt(), now)
	}
}

// The per-claimant counts start over once there are too many claimants,
// so the map stays bounded; the total does not.
func TestConflictLogIsBounded(t *testing.T) {
	var c conflictLog
	now := time.Now()
	c.record("a", "x", now)
	c.record("a", "x", now)
	for i := range maxConflictClaimants {
		c.record("n", fmt.Sprint(i), now)
	}
	if len(c.seen) > maxConflictClaimants+1 {
		t.Fatalf("%d claimants kept, want at most %d", len(c.seen), maxConflictClaimants+1)
	}
	if _, reports, _ := c.record("a", "x", now); reports != 1 {
		t.Fatalf("a claimant's reports after the counts started over: %d, want 1", reports)
	}
	if c.count() != maxConflictClaimants+3 {
		t.Fatalf("count %d, want %d", c.count(), maxConflictClaimants+3)
	}
}
