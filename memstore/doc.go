// Package memstore is the in-memory FACTSTR store: simple, fully featured,
// and the reference the other stores are compared against in tests and
// examples. Nothing survives Close.
package memstore
