// Package adminsvc serves factstr.v1.AdminService over a cluster node:
// status and members, joining, leaving, removing and leadership transfer,
// backups (SnapshotSave, SnapshotRestore with an upload cap), the durable
// stream names (through server.Durables), and the gRPC health service's
// view of the node (WatchHealth). It is the one client-facing service that
// knows the cluster; internal/server serves the event store over any
// contract.EventStore, and both are authorised by server's access table.
package adminsvc
