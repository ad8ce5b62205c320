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
