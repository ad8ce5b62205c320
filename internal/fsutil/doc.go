// Package fsutil owns the one way this module replaces a file on disk so
// that a crash leaves either the old or the new content, never a torn or
// empty file: write a temporary file in the same directory, fsync it,
// rename it over the target, then fsync the directory. The rename is
// atomic (rename(2)), but it is only durable once the directory that
// holds the entry has been synced (fsync(2)); without that last step a
// crash can bring back the old file, or none.
package fsutil
