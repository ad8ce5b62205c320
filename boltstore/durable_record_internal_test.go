package boltstore

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/factstr/factstr-go/contract"
)

// A record written before lastAck, created and start existed decodes with
// them zero; a record with them round-trips.
func TestDurableRecordVersions(t *testing.T) {
	old := []byte{recordVersion}
	old = binary.BigEndian.AppendUint64(old, 42)
	old = putUvarintBytes(old, []byte("n1/3"))
	old = putUvarintBytes(old, []byte("key"))
	old = putUvarintBytes(old, []byte(`{"Filters":null,"MinSequenceNumber":0}`))
	d, err := decodeDurable(old)
	if err != nil {
		t.Fatal(err)
	}
	want := durableRecord{cursor: 42, holder: "n1/3", queryKey: "key", queryJSON: []byte(`{"Filters":null,"MinSequenceNumber":0}`)}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("old record decoded as %+v, want %+v", d, want)
	}
	full := durableRecord{cursor: 7, queryKey: "k", queryJSON: []byte(`{}`), lastAck: 1234567, created: -5,
		start: contract.StartPosition{Kind: contract.StartAfterSequence, After: 3}}
	got, err := decodeDurable(full.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Fatalf("record decoded as %+v, want %+v", got, full)
	}
	if _, err := decodeDurable(full.encode()[:len(full.encode())-2]); err == nil {
		t.Fatal("a truncated record decoded without error")
	}
}

// A record without a failure policy is written as before (a reader that
// predates policies reads it); one with a policy and parked events
// round-trips, and a parked record does too.
func TestDurableRecordFailurePolicy(t *testing.T) {
	stop := durableRecord{cursor: 7, queryKey: "k", queryJSON: []byte(`{}`), lastAck: 1, created: 2}
	withStart := stop
	withStart.start = contract.StartPosition{Kind: contract.StartEnd}
	if got, want := len(withStart.encode()), len(stop.encode()); got != want {
		t.Fatalf("a stop record is %d bytes, want %d as before failure policies", got, want)
	}
	park := stop
	park.failure = contract.FailurePolicy{MaxDeliveries: 5, InitialBackoff: 100e6, MaxBackoff: 5e9}
	park.parked = 12
	got, err := decodeDurable(park.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, park) {
		t.Fatalf("record decoded as %+v, want %+v", got, park)
	}
	enc := park.encode()
	if _, err := decodeDurable(enc[:len(enc)-1]); err == nil {
		t.Fatal("a truncated record decoded without error")
	}
	p := parkedRecord{attempts: 3, parkedAt: -9, redeliver: true, lastError: "boom"}
	gp, err := decodeParked(p.encode())
	if err != nil || gp != p {
		t.Fatalf("parked record decoded as %+v, %v; want %+v", gp, err, p)
	}
	if _, err := decodeParked(p.encode()[:3]); err == nil {
		t.Fatal("a truncated parked record decoded without error")
	}
}

// Parked keys of one name never share a prefix with another name's.
func TestParkedKeysDoNotOverlap(t *testing.T) {
	a, b := parkedKey("ab", 1), parkedPrefix("a")
	if len(a) >= len(b) && string(a[:len(b)]) == string(b) {
		t.Fatalf("the parked key %x of %q starts with the prefix %x of %q", a, "ab", b, "a")
	}
}
