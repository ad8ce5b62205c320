package raftlog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/raft"

	"github.com/factstr/factstr-go/internal/configerr"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("raftlog: invalid config")

// ConfigError names the field that is wrong and says how to fix it. It
// unwraps to ErrInvalidConfig. It is the module's one config error type,
// shared with the other packages' Validate.
type ConfigError = configerr.Error

// Limits hashicorp/raft enforces in ValidateConfig. We check them ourselves
// so the error names our field and the fix.
const (
	minTimeout          = 5 * time.Millisecond
	minCommitTimeout    = time.Millisecond
	maxAppendEntriesCap = 1024 // raft rejects larger values
)

// Log store kinds (Config.LogStore).
const (
	LogStoreBolt = "bolt"
	LogStoreWAL  = "wal"
)

// Config is everything that shapes a node's Raft plumbing. Start from
// DefaultConfig and set NodeID, DataDir and BindAddr.
type Config struct {
	// NodeID is the Raft server ID. It must be stable for the life of the
	// data directory (on Kubernetes: the pod name) and never reused for a
	// node whose disk was wiped.
	NodeID string

	// DataDir is the node's data directory. Raft state lives in DataDir/raft.
	DataDir string

	// BindAddr is the TCP host:port the transport listens on. Port 0 picks
	// a free port (tests).
	BindAddr string

	// AdvertiseAddr is the host:port peers dial. Empty means the bound
	// listener address. It may be a DNS name (a stable pod name survives IP
	// changes; hashicorp/raft dials the address it was given, so the name
	// is resolved on every new connection); an IP must not be unspecified
	// (0.0.0.0).
	AdvertiseAddr string

	// HeartbeatTimeout is how long a follower waits without contact from the
	// leader before it campaigns. The leader heartbeats at a tenth of it.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits before starting another
	// election. It must be >= HeartbeatTimeout.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching a
	// quorum. It must be <= HeartbeatTimeout. It is not a read lease.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long a follower may wait to learn a new
	// commit index when no new entries are being appended.
	CommitTimeout time.Duration

	// MaxAppendEntries is how many entries the leader writes in one
	// StoreLogs (one fsync) and sends in one AppendEntries: the group-commit
	// batch. hashicorp/raft rejects values above 1024. Times the largest
	// entry it bounds the bytes of one AppendEntries (see cluster.Config).
	MaxAppendEntries int

	// SnapshotThreshold is how many entries past the last snapshot trigger
	// a new one; raft checks every SnapshotInterval (with jitter).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// a follower that fell behind catches up from the log instead of
	// receiving the whole snapshot. It must be >= SnapshotThreshold.
	TrailingLogs uint64

	// LogCacheSize is how many recent entries raft.NewLogCache keeps in
	// memory in front of the bolt store.
	LogCacheSize int

	// LogStore picks the Raft log and stable store for a new data directory:
	// LogStoreBolt (raft-boltdb, the default: bbolt, two fsyncs per append)
	// or LogStoreWAL (hashicorp/raft-wal: segment files, one fsync per
	// append; its authors still call it experimental). A directory that
	// already holds either kind keeps it, whatever this says.
	LogStore string

	// NoFreelistSync stops bbolt writing its freelist on every commit. That
	// saves a lot of write IO on a log that is appended and truncated all
	// the time; the price is a freelist rebuild (a full scan) when raft.db
	// is opened after an unclean stop.
	NoFreelistSync bool

	// TransportMaxPool is how many idle connections per peer the transport
	// keeps.
	TransportMaxPool int
	// TransportTimeout is the I/O deadline for one RPC (scaled up for
	// snapshot installs).
	TransportTimeout time.Duration

	// TLS, if not nil, turns on mutual TLS for all Raft traffic, inbound
	// and outbound; nil means plain TCP. Every node of a cluster must agree:
	// a TLS node refuses plain peers and cannot reach them. One config
	// serves both directions (a node is server and client of the same
	// peers with one identity; see tls.go). It must hold this node's
	// certificate (Certificates, used on accept and on dial) and the CA pool
	// (RootCAs) that verifies peers in both directions; ClientCAs and
	// ClientAuth are ignored. A peer must present a certificate that chains
	// to RootCAs and is valid for server and client auth; its host name is
	// not checked (see tls.go for why). Refused connections are logged at
	// warn level with the remote address.
	//
	// For certificates that rotate while the node runs, TLS may set
	// GetCertificate and GetClientCertificate (both; they are called on
	// accept and on dial) instead of Certificates, and TLSRootCAs instead
	// of RootCAs.
	TLS *tls.Config
	// TLSRootCAs, if not nil, returns the current CA pool that verifies
	// Raft peers; it is called on every handshake and replaces TLS.RootCAs
	// (which must then be nil). Verification is the same chain-only check.
	// It is ignored without TLS.
	TLSRootCAs func() *x509.CertPool

	// Logger receives raft's and the transport's logs. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns defaults for a three-node cluster in one region.
// NodeID, DataDir and BindAddr have no sensible default and are left empty.
func DefaultConfig() Config {
	const threshold = 8192
	return Config{
		// raft's own defaults. Within one region RTTs are well below a
		// millisecond, but GC pauses, fsync stalls and noisy neighbours are
		// not; a 1 s heartbeat timeout avoids needless elections.
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		// raft's default is 64. It bounds an AppendEntries by count only,
		// and an entry may be as large as one append (2 MiB by default):
		// 32 keeps one AppendEntries within 64 MiB (the cluster package
		// checks the product). Group commit rarely fills even this: with
		// one batch in flight per node, a leader writes about one entry
		// per node at a time, each already coalescing many appends.
		MaxAppendEntries: 32,
		// rqlite's values: snapshot every 8192 entries, keep 1.25x that.
		SnapshotThreshold: threshold,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      threshold + threshold/4,
		// rqlite's value.
		LogCacheSize:     512,
		NoFreelistSync:   true,
		TransportMaxPool: 3,
		TransportTimeout: 10 * time.Second,
	}
}

// Validate checks every field and reports every problem found, each as a
// *ConfigError wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, configerr.New(ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}

	if c.NodeID == "" {
		bad("NodeID", "must be set; use a name that is stable for this data directory, such as the pod name")
	} else if strings.IndexFunc(c.NodeID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		bad("NodeID", "%q contains whitespace or control characters; use a plain name such as the pod name", c.NodeID)
	}
	if c.DataDir == "" {
		bad("DataDir", "must be set; Raft state is kept in DataDir/raft")
	}

	bindHost, bindErr := checkHostPort(c.BindAddr, true)
	if bindErr != nil {
		bad("BindAddr", "%v; use host:port such as 0.0.0.0:7000, or 127.0.0.1:0 in tests", bindErr)
	}
	if c.AdvertiseAddr != "" {
		host, err := checkHostPort(c.AdvertiseAddr, false)
		switch {
		case err != nil:
			bad("AdvertiseAddr", "%v; use the host:port peers dial, such as pod-0.factstr.ns.svc:7000", err)
		case host == "" || isUnspecified(host):
			bad("AdvertiseAddr", "%q is not an address peers can dial; set the node's routable IP or DNS name", c.AdvertiseAddr)
		}
	} else if bindErr == nil && (bindHost == "" || isUnspecified(bindHost)) {
		bad("AdvertiseAddr", "must be set because BindAddr %q listens on all interfaces, which peers cannot dial; set the node's routable IP or DNS name", c.BindAddr)
	}

	if c.HeartbeatTimeout < minTimeout {
		bad("HeartbeatTimeout", "%v is below raft's minimum %v; the default is 1s, tests may use 50ms", c.HeartbeatTimeout, minTimeout)
	}
	if c.ElectionTimeout < minTimeout {
		bad("ElectionTimeout", "%v is below raft's minimum %v; the default is 1s", c.ElectionTimeout, minTimeout)
	} else if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", "%v is less than HeartbeatTimeout %v; raise it to at least HeartbeatTimeout", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout < minTimeout {
		bad("LeaderLeaseTimeout", "%v is below raft's minimum %v; the default is 500ms", c.LeaderLeaseTimeout, minTimeout)
	} else if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", "%v is more than HeartbeatTimeout %v; lower it to at most HeartbeatTimeout (half is usual)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout < minCommitTimeout {
		bad("CommitTimeout", "%v is below raft's minimum %v; the default is 50ms", c.CommitTimeout, minCommitTimeout)
	}

	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > maxAppendEntriesCap {
		bad("MaxAppendEntries", "%d is outside 1..%d (raft's hard limit); the default is 32", c.MaxAppendEntries, maxAppendEntriesCap)
	}
	if c.SnapshotThreshold < 1 {
		bad("SnapshotThreshold", "must be at least 1; the default is 8192")
	}
	if c.SnapshotInterval < minTimeout {
		bad("SnapshotInterval", "%v is below raft's minimum %v; the default is 30s", c.SnapshotInterval, minTimeout)
	}
	if c.SnapshotThreshold >= 1 && c.TrailingLogs < c.SnapshotThreshold {
		// With fewer trailing logs than the threshold, every snapshot throws
		// away entries a follower restarting mid-interval still needs, so
		// routine restarts turn into full snapshot installs.
		bad("TrailingLogs", "%d is less than SnapshotThreshold %d; set it to at least the threshold (1.25x is the default)", c.TrailingLogs, c.SnapshotThreshold)
	}
	if c.LogStore != "" && c.LogStore != LogStoreBolt && c.LogStore != LogStoreWAL {
		bad("LogStore", "%q is not a log store; use %q (the default) or %q", c.LogStore, LogStoreBolt, LogStoreWAL)
	}
	if c.LogCacheSize < 1 {
		bad("LogCacheSize", "must be at least 1; the default is 512")
	}
	if c.TransportMaxPool < 1 {
		bad("TransportMaxPool", "must be at least 1, or every RPC dials a new connection; the default is 3")
	}
	if c.TransportTimeout <= 0 {
		bad("TransportTimeout", "must be positive, or a hung peer blocks replication forever; the default is 10s")
	}
	if c.TLS != nil {
		if err := checkTLS(c.TLS, c.TLSRootCAs); err != nil {
			bad("TLS", "%v", err)
		}
	}

	if len(errs) == 0 {
		// Backstop: if raft grows a new rule we don't know about, fail here
		// rather than in raft.NewRaft.
		if err := raft.ValidateConfig(c.raftConfig(nil)); err != nil {
			errs = append(errs, configerr.New(ErrInvalidConfig, "Config", "hashicorp/raft rejects it: "+err.Error()))
		}
	}
	return errors.Join(errs...)
}

// raftConfig translates c into a raft.Config. It is the only place that
// does so.
func (c Config) raftConfig(logger *hclogAdapter) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs

	// Pre-vote is on by default since hashicorp/raft 1.7; in 1.8 it is
	// switched off by PreVoteDisabled, or silently (with one warning) when
	// the transport does not implement raft.WithPreVote. We keep it on
	// explicitly: without it a node that was partitioned or restarted keeps
	// bumping its term while it cannot win, and when it comes back its
	// higher term deposes a healthy leader (vault#23599, consul-k8s#3000).
	// With pre-vote it first asks whether it could win and only then raises
	// its term. Our transport is a raft.NetworkTransport, which implements
	// WithPreVote, and the one wrapper of it, the vote guard (GuardVotes),
	// implements it too; both are asserted at compile time below and in
	// voteguard.go. Any new wrapper must do the same, or raft turns
	// pre-vote off.
	rc.PreVoteDisabled = false

	// The FSM keeps its own state in bbolt and decides itself whether it
	// needs to restore from a snapshot at start. The pitfall (see the
	// NoSnapshotRestoreOnStart field of hashicorp/raft's Config: snapshot
	// metadata still initialises raft's index values): with
	// NoSnapshotRestoreOnStart raft still sets
	// lastApplied to the newest snapshot's index and, once it learns the
	// commit index, *replays every entry after it* into FSM.Apply,
	// including entries the FSM already applied before the restart (and, if
	// there is no snapshot, the whole log). The FSM must therefore store its
	// applied index in the same bbolt transaction as the data and skip
	// entries at or below it. Conversely, if the FSM's state is behind the
	// snapshot index (an unclean stop with NoSync), raft will not help: those
	// entries may already be truncated, so the FSM must restore the snapshot
	// itself before raft.NewRaft.
	rc.NoSnapshotRestoreOnStart = true

	if logger != nil {
		rc.Logger = logger.Named("raft")
	}
	return rc
}

// Compile-time proof that the transport we build supports pre-vote; see
// raftConfig.
var _ raft.WithPreVote = (*raft.NetworkTransport)(nil)

// checkHostPort splits addr and checks the port. It returns the host.
func checkHostPort(addr string, allowZeroPort bool) (string, error) {
	if addr == "" {
		return "", errors.New("must be set")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port (%v)", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("%q has port %q, not a number in 0..65535", addr, port)
	}
	if p == 0 && !allowZeroPort {
		return "", fmt.Errorf("%q has port 0, which peers cannot dial", addr)
	}
	return host, nil
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
