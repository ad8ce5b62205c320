// Package boltcheck verifies the structure of a bbolt file by reading it
// with ordinary reads, before bbolt maps it into memory.
//
// bbolt trusts its file: a truncated or overwritten page makes it fault
// in the mmap (SIGBUS) or fail an assertion in a goroutine of its own
// (the free-page scan at open), and neither can be recovered. Check walks
// every page that bbolt's open would touch (the meta pages, the freelist,
// every branch and leaf page of every bucket) and checks what bbolt
// asserts: page ids and types, bounds, single references and key order. A
// file that passes can be opened; one that fails yields ErrCorrupt.
//
// The walk reads the whole tree once, as bbolt's own free-page scan does
// at open for files written with NoFreelistSync, so it adds about one more
// read of the file (mostly from the page cache) to an open.
package boltcheck
