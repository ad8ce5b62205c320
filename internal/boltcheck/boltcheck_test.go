package boltcheck_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/factstr/factstr-go/internal/boltcheck"
)

// makeDB writes a file with what the stores use: nested, inline and large
// buckets, overflow values, deletions (free pages).
func makeDB(t *testing.T, noFreelistSync bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoFreelistSync: noFreelistSync})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		big, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := big.Put(fmt.Appendf(nil, "k%06d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		if err := big.Put([]byte("overflow"), bytes.Repeat([]byte("v"), 20000)); err != nil {
			return err
		}
		parent, err := tx.CreateBucket([]byte("parent"))
		if err != nil {
			return err
		}
		inline, err := parent.CreateBucket([]byte("inline"))
		if err != nil {
			return err
		}
		return inline.Put([]byte("a"), []byte("b"))
	})
	if err == nil {
		err = db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("big"))
			for i := 0; i < 2000; i += 3 {
				if err := b.Delete(fmt.Appendf(nil, "k%06d", i)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		path := makeDB(t, noSync)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pageSize := os.Getpagesize()
		tests := []struct {
			name    string
			damage  func([]byte) []byte
			corrupt bool
		}{
			{"intact", func(b []byte) []byte { return b }, false},
			{"empty", func(b []byte) []byte { return nil }, false},
			{"truncated in the middle", func(b []byte) []byte { return b[:len(b)/2] }, true},
			{"truncated to the meta pages", func(b []byte) []byte { return b[:2*pageSize] }, true},
			{"both meta pages garbage", func(b []byte) []byte { garbage(b[:2*pageSize], 1); return b }, true},
			{"every data page garbage", func(b []byte) []byte { garbage(b[2*pageSize:], 2); return b }, true},
			{"every data page zero", func(b []byte) []byte { clear(b[2*pageSize:]); return b }, true},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/nofreelistsync=%v", tt.name, noSync), func(t *testing.T) {
				p := filepath.Join(t.TempDir(), "x.db")
				if err := os.WriteFile(p, tt.damage(bytes.Clone(orig)), 0o600); err != nil {
					t.Fatal(err)
				}
				err := boltcheck.Check(p)
				if got := errors.Is(err, boltcheck.ErrCorrupt); got != tt.corrupt {
					t.Fatalf("Check = %v, want corrupt %v", err, tt.corrupt)
				}
				if err != nil && !bytes.Contains([]byte(err.Error()), []byte(p)) {
					t.Fatalf("error %q does not name the file", err)
				}
			})
		}
	}
}

// TestCheckedFilesOpen damages single pages at random: whatever Check
// passes, bbolt opens and reads in full without faulting or panicking
// (a fault here kills the test binary, which fails the test).
func TestCheckedFilesOpen(t *testing.T) {
	path := makeDB(t, true)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	pages := len(orig) / pageSize
	rng := rand.New(rand.NewPCG(1, 2))
	passed, refused := 0, 0
	for i := range 300 {
		b := bytes.Clone(orig)
		pg := rng.IntN(pages)
		off := pg*pageSize + rng.IntN(pageSize)
		n := 1 + rng.IntN(64)
		garbage(b[off:min(off+n, len(b))], uint64(i))
		p := filepath.Join(t.TempDir(), "x.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := boltcheck.Check(p); err != nil {
			if !errors.Is(err, boltcheck.ErrCorrupt) {
				t.Fatalf("case %d: %v", i, err)
			}
			refused++
			continue
		}
		passed++
		db, err := bbolt.Open(p, 0o600, &bbolt.Options{NoFreelistSync: true})
		if err != nil {
			continue // a clean error is fine too
		}
		_ = db.View(func(tx *bbolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bbolt.Bucket) error { return walk(b) })
		})
		_ = db.Close()
	}
	if refused == 0 || passed == 0 {
		t.Fatalf("passed %d, refused %d: the damage did not exercise both outcomes", passed, refused)
	}
}

func walk(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if c := b.Bucket(k); c != nil {
				return walk(c)
			}
		}
		return nil
	})
}

func garbage(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
}
