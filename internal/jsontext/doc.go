// Package jsontext reads JSON text the way encoding/json does, in one pass
// over the bytes and with few allocations: Valid is json.Valid, Decode is
// json.Valid followed by a json.Decoder with UseNumber decoding into an
// any, and Project decodes only the members of a top-level object that a
// caller asks for.
//
// Payload predicates and payloads are decoded on every append, AppendIf
// and query, on every replica. encoding/json scans a value twice (Valid,
// then the decoder), allocates a decoder with its buffer per value, and
// allocates every string and map of a payload only for a matcher to look
// at one key. Profiles of a loaded follower showed that decoding at about a
// fifth of its CPU.
//
// The state machine applies the same bytes on replicas of different
// versions, so what these functions accept and produce must be exactly
// encoding/json's: the grammar of its scanner (RFC 8259, any byte from 0x20
// in a string, containers nested at most MaxDepth deep), strings decoded as
// its unquote does (invalid UTF-8 becomes U+FFFD per byte; a \u surrogate
// pairs only with a directly following \u low surrogate, else it becomes
// U+FFFD), numbers kept as their literal text (json.Number), and of
// duplicate object keys the last one wins. The tests compare every function
// with encoding/json on a table of edge cases and under fuzzing.
package jsontext
