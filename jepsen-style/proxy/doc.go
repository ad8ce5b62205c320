// Package proxy is a TCP proxy that adds latency, jitter and a blackhole to
// the connections it forwards: the fault suite's substitute for tc netem,
// which this kernel lacks (docs/fault-testing.md).
//
// A Proxy accepts connections and forwards each to one target. Each
// direction of each connection has its own reader and writer: the reader
// timestamps every chunk it reads and queues it, the writer releases it at
// read time + Delay + a jitter drawn uniformly from [0, Jitter). Chunks
// leave in the order they arrived (a chunk never overtakes its
// predecessor), and connections do not wait behind each other's sleeps.
// Changing the settings takes effect at once, also for queued chunks:
// setting the delay back to 0 releases them.
//
// Blackhole holds data instead of forwarding it, as a network partition
// does with TCP (retransmissions, then a stalled connection): the readers
// keep reading until a bounded queue fills, then the sender's socket
// buffers fill. Nothing is dropped, so a stream is never corrupted; lifting
// the blackhole releases what was held.
//
// The fault suite runs one proxy per node inside the node's network
// namespace in front of its Raft port (Serve, started as `jepsen -proxy
// listen=...,target=...,control=...`), so nftables partitions, which
// match the peers' source addresses, still apply. The runner changes the
// settings over a small HTTP endpoint (Handler, Set, Get).
package proxy
