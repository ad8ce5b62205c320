// Package spawn starts the child processes of the test harnesses
// (internal/testcluster, the fault suite's runner): each in its own
// process group, so a signal reaches the whole tree, and on Linux tied to
// this process's life, so a test binary that dies (a `go test -timeout`
// panic skips cleanups) or a runner that is killed leaves no node behind.
package spawn
