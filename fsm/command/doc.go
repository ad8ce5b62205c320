// Package command is the Raft command set of FACTSTR: every kind of change
// the replicated state machine applies, as one Go type per kind holding
// only that kind's fields, the outcome of a command (Result), the group of
// commands applied under one log index (Entry), and their encodings: the
// bytes of a Raft log entry (Encode, Decode) and of the results a leader
// sends back for forwarded commands (EncodeResults, DecodeResults).
//
// The package owns what a command means and how it travels; it applies
// nothing. boltstore applies commands to its bbolt file (the appliers in
// boltstore/apply.go, groups.go, parked.go, durables.go), for the Raft FSM
// (package fsm) and for the embedded store alike; the cluster builds and
// proposes them.
//
// The numeric values of the kinds and the entry encoding are part of the
// Raft log format, which nodes of different versions share: a kind is
// never renumbered, and the bytes written for a command never change
// (codec_golden_test.go pins them). The package imports neither boltstore
// nor fsm, which both import it.
package command
