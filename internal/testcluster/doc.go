// Package testcluster runs real factstr-node processes for end-to-end and
// fault-injection tests.
//
//	bin := testcluster.Build(t)            // once per test process
//	c := testcluster.Start(t, testcluster.Options{Nodes: 3})
//	leader, _ := c.Leader(ctx)
//	c.Node(leader).Kill()                  // SIGKILL
//	cl := c.Client(t)                      // *client.Client over every node
//
// Every node is a `factstr-node serve` process on 127.0.0.1 with its own
// ports (gRPC, Raft, gossip), its own data directory under t.TempDir() and
// its own log file (stdout and stderr). Processes run in their own process
// group and are always stopped when the test ends (SIGTERM, then SIGKILL
// after a grace period); on Linux they also get SIGKILL if the test binary
// dies (a `go test -timeout` panic skips cleanups). When the test failed,
// the tail of every node's log is printed.
//
// Nodes are numbered from 0 (Cluster.Node(i)); node i runs with
// --node-id n<i+1>, --bootstrap-expect N, --join with the others' gossip
// addresses and fast Raft timeouts (FastRaftArgs). Waits are bounded, poll
// every PollInterval and fail with what they last saw. Lifecycle methods
// (Kill, Stop, Restart, Pause, Resume) return errors instead of failing the
// test, so a fault-injection goroutine may call them.
//
// Client logs go to clients.log in Cluster.Dir, printed with the node logs
// on failure. Call RemoveBuild from TestMain after m.Run to delete the
// built binary; FACTSTR_TEST_NODE_BIN points at a prebuilt one instead.
//
// The package needs a Unix system (process groups, SIGSTOP/SIGCONT).
package testcluster
