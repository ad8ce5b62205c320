// Package lazyfs is a FUSE loopback file system that loses un-fsynced
// writes on demand: the power-loss fault of the jepsen-style suite.
//
// It owns one mount: a mountpoint that mirrors a backing directory. What it
// models, precisely:
//
//   - File data (write, and truncate/ftruncate/O_TRUNC) is not written to
//     the backing file when it happens. It is kept in memory per file (per
//     backing inode, shared by every open handle of that file) as a page
//     overlay, and every read through the mount sees it (read-your-writes,
//     also through mmap: the kernel page cache of the mount is filled from
//     the overlay). Stat reports the logical size.
//   - fsync or fdatasync of any handle of a file flushes all of that file's
//     pending data to the backing file and fsyncs it there. A handle opened
//     with O_SYNC or O_DSYNC flushes after each write.
//   - Metadata operations pass through to the backing directory at once and
//     are never lost: create, mkdir, mknod, symlink, link, rename, unlink,
//     rmdir, chmod, chown, utimes, xattrs. A file created and never synced
//     therefore survives a power loss, but empty; a file renamed before its
//     data was synced is there under its new name with its last synced
//     content (the classic "rename without fsync" hazard). Directory fsync
//     is accepted and has nothing to do.
//   - DropUnsynced discards every pending write: each file reverts to its
//     content at its last sync. Loss is all-or-nothing per file since its
//     last sync (no torn or reordered writes: that is kinder than real
//     hardware, so a failure here is a real bug).
//   - PowerCycle is the faithful power loss: the caller has SIGKILLed every
//     process using the mount; PowerCycle cuts the FUSE connection (lazy
//     unmount if still busy; requests that still arrive on the old
//     connection get EIO and never reach the backing files), drops every
//     unsynced write and mounts a fresh file system on the same mountpoint,
//     so the kernel holds no stale pages or attributes.
//
// Not supported: fallocate (EOPNOTSUPP), O_TMPFILE (EOPNOTSUPP), and a
// backing directory that spans more than one file system (pending state is
// keyed by backing inode number). The kernel page cache is used (no
// direct I/O, so mmap works) but never kept across opens, attribute and
// entry timeouts are zero, FUSE passthrough and READDIRPLUS are off, so the
// kernel always learns sizes from the overlay.
//
// The process that serves the mount must not touch its files through an
// mmap: a thread blocked in a page fault on the mount keeps the Go
// runtime's stop-the-world waiting, and with it the server the fault waits
// for (the tests run bbolt in a child process for that reason).
//
// Mounting needs root and /dev/fuse: Mount calls mount(2) itself
// (DirectMountStrict), so neither fusermount nor the fuse3 package is
// needed. WithFusermountFallback allows go-fuse's fusermount fallback.
package lazyfs
