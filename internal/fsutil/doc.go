// Package fsutil owns the one way this module replaces a file on disk so
// that a crash leaves either the old or the new content, never a torn or
// empty file: write a temporary file in the same directory, fsync it,
// rename it over the target, then fsync the directory so the rename itself
// is durable (the pattern etcd's fileutil and rqlite use; see also
// rename(2) and fsync(2): a rename is made durable only by syncing the
// directory that holds it).
package fsutil
