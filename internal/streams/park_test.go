package streams

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factstr/factstr-go/contract"
)

// scriptedAttempts is a subscription whose handler returns errs in turn
// (nil once they run out) and that is stopped after stopAfter deliveries
// (0: never).
type scriptedAttempts struct {
	errs      []error
	stopAfter int
	got       []contract.Delivery
}

func (a *scriptedAttempts) deliverTimed(_ []contract.EventRecord, d contract.Delivery) error {
	a.got = append(a.got, d)
	if i := len(a.got) - 1; i < len(a.errs) {
		return a.errs[i]
	}
	return nil
}

func (a *scriptedAttempts) isStopped() bool { return a.stopAfter > 0 && len(a.got) >= a.stopAfter }
func (a *scriptedAttempts) ctxErr() error   { return nil }

// testRetryPark is a "retry max then park" policy with 1ms backoffs over
// d, and counters for its metrics callbacks.
func testRetryPark(t *testing.T, d *fakeDurables, max int) (r *retryPark, redeliveries, parked *int) {
	lease := testLease(d, nil)
	cur := startCursor(lease, 0, func(err error) { t.Errorf("the stream was ended: %v", err) }, discard)
	t.Cleanup(func() { cur.finish() })
	redeliveries, parked = new(int), new(int)
	r = &retryPark{
		policy:       contract.FailurePolicy{MaxDeliveries: max, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		lease:        lease,
		cursor:       cur,
		poll:         time.Hour,
		logger:       discard,
		onRedelivery: func(string) { *redeliveries++ },
		onParked:     func(_ string, n int) { *parked += n },
	}
	return r, redeliveries, parked
}

func TestRetryParkDeliver(t *testing.T) {
	fail := errors.New("handler failed")
	cases := []struct {
		name         string
		errs         []error
		stopAfter    int
		redelivery   bool
		parkErr      error
		wantParked   bool
		wantErr      error // errors.Is
		wantAttempts int
		wantPark     *Parking // the Park call; nil: none
		wantCursor   uint64   // the cursor's acknowledged position after
	}{
		{name: "taken at once", wantAttempts: 1},
		{name: "taken on the third delivery", errs: []error{fail, fail}, wantAttempts: 3},
		{
			name: "parked after every delivery failed", errs: []error{fail, fail, fail},
			wantParked: true, wantAttempts: 3,
			wantPark:   &Parking{Cursor: 11, Seqs: []uint64{10, 11}, Attempts: 3, Error: "handler failed"},
			wantCursor: 11,
		},
		{
			name: "a redelivery parked again leaves the cursor", errs: []error{fail, fail, fail}, redelivery: true,
			wantParked: true, wantAttempts: 3,
			wantPark: &Parking{Seqs: []uint64{10, 11}, Attempts: 3, Error: "handler failed"},
		},
		{name: "stopped between deliveries", errs: []error{fail, fail, fail}, stopAfter: 2, wantErr: errStopped, wantAttempts: 2},
		{
			name: "a park the store refuses ends the stream", errs: []error{fail, fail, fail}, parkErr: contract.ErrDurableLeaseLost,
			wantParked: true, wantErr: contract.ErrDurableLeaseLost, wantAttempts: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDurables{parkErr: tc.parkErr}
			r, redeliveries, parked := testRetryPark(t, d, 3)
			a := &scriptedAttempts{errs: tc.errs, stopAfter: tc.stopAfter}
			gotParked, err := r.deliver(t.Context(), a, records(10, 11), tc.redelivery)
			if gotParked != tc.wantParked || !errors.Is(err, tc.wantErr) {
				t.Fatalf("deliver = parked %v, %v; want %v, %v", gotParked, err, tc.wantParked, tc.wantErr)
			}
			if len(a.got) != tc.wantAttempts {
				t.Fatalf("%d deliveries, want %d", len(a.got), tc.wantAttempts)
			}
			for i, dl := range a.got {
				if dl.Attempt != i+1 || dl.Redelivery != tc.redelivery {
					t.Fatalf("delivery %d was %+v, want attempt %d, redelivery %v", i, dl, i+1, tc.redelivery)
				}
			}
			// Every delivery after the first counts as a redelivery.
			if want := len(a.got) - 1; *redeliveries != want {
				t.Fatalf("%d redeliveries counted, want %d", *redeliveries, want)
			}
			d.mu.Lock()
			parks := d.parks
			d.mu.Unlock()
			switch {
			case tc.wantPark == nil && len(parks) != 0:
				t.Fatalf("parked %+v, want no park", parks)
			case tc.wantPark != nil && (len(parks) != 1 || parks[0].Cursor != tc.wantPark.Cursor ||
				!slices.Equal(parks[0].Seqs, tc.wantPark.Seqs) || parks[0].Attempts != tc.wantPark.Attempts || parks[0].Error != tc.wantPark.Error):
				t.Fatalf("parked %+v, want %+v", parks, *tc.wantPark)
			}
			if wantCount := len(parks) * 2; *parked != wantCount {
				t.Fatalf("%d parked events counted, want %d", *parked, wantCount)
			}
			if got := r.cursor.ackedPos(); got != tc.wantCursor {
				t.Fatalf("cursor at %d after, want %d", got, tc.wantCursor)
			}
		})
	}
}

// Parked events due are redelivered as one batch flagged as a
// redelivery, and leave the parked list once handled; the parked list is
// read at most once per poll.
func TestRetryParkRedeliverDue(t *testing.T) {
	d := &fakeDurables{due: [][]contract.ParkedEvent{{{Event: records(4)[0]}, {Event: records(9)[0]}}}}
	r, _, _ := testRetryPark(t, d, 3)
	a := &scriptedAttempts{}
	if err := r.redeliverDue(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if len(a.got) != 1 || !a.got[0].Redelivery {
		t.Fatalf("deliveries %+v, want one redelivery", a.got)
	}
	d.mu.Lock()
	unparks, reads := d.unparks, d.dueReads
	d.mu.Unlock()
	if len(unparks) != 1 || !slices.Equal(unparks[0], []uint64{4, 9}) {
		t.Fatalf("unparked %v, want [[4 9]]", unparks)
	}
	if reads != 2 { // the page, then an empty one
		t.Fatalf("%d reads of the parked list, want 2", reads)
	}
	if err := r.redeliverDue(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dueReads != reads {
		t.Fatalf("the parked list was read again within the poll interval")
	}
}

func TestTruncateUTF8(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exact", 5, "exact"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: not split
		{"aéb", 3, "aé"},
		{strings.Repeat("€", 3), 7, "€€"}, // € is three bytes
	}
	for _, c := range cases {
		if got := truncateUTF8(c.in, c.n); got != c.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
