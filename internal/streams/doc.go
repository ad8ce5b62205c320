// Package streams owns stream delivery for every FACTSTR store: live
// subscriptions, catch-up subscriptions and durable subscriptions with their
// cursors and name leases.
//
// Delivery is pull-based. A store publishes only its committed head sequence
// number (Hub.Publish) after each commit; every subscription keeps its own
// position and reads the committed batches after it from the store (Source).
// Replay and live delivery are the same loop, so the hand-over between them
// can neither skip nor repeat a batch, and a slow subscriber only falls
// behind.
//
// What a subscription holds read but not yet delivered is bounded in bytes
// (Config.SubscriberBytes), and all subscriptions of an engine share a
// node budget (Config.NodeBytes) they wait for before reading. A handler
// that holds one delivery past Config.StallTimeout loses the read-ahead;
// a live subscription also ends with ErrSubscriberTooSlow, and its
// subscriber resumes by position.
//
// What differs between stores is behind two interfaces: Source (reading
// committed batches) and Durables (storing cursors and holding names). The
// in-memory and bbolt stores implement Durables locally; the cluster
// implements it through the Raft log.
package streams
