package client

import (
	"crypto/tls"
	"log/slog"
	"time"

	"google.golang.org/grpc"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	tlsConfig      *tls.Config
	token          string
	dialOpts       []grpc.DialOption
	retryTimeout   time.Duration
	attemptTimeout time.Duration
	logger         *slog.Logger
	maxStreamLag   time.Duration
	lagSet         bool
	anyNodeWrites  bool
}

// DefaultAttemptTimeout is the per-attempt timeout of WithAttemptTimeout
// when the option is not given. It is far above a healthy node's answer
// time (milliseconds; a node without a leader answers UNAVAILABLE itself)
// and well below the ~20 s gRPC spends trying to connect to an address
// that never answers, such as a Kubernetes pod's vanished IP.
const DefaultAttemptTimeout = 5 * time.Second

// WithWritesToAnyNode turns off write routing: by default a client that
// dials several nodes sends its Append and AppendIf calls to the node that
// leads the cluster, learned from the nodes' answers (a follower says it
// forwarded), as KurrentDB's clients prefer the leader for writes; the
// follower's hop to the leader is then saved. With this option writes go
// round the nodes like reads, and followers forward them.
func WithWritesToAnyNode() Option { return func(o *options) { o.anyNodeWrites = true } }

// WithTLS uses TLS (mutual TLS when cfg has client certificates).
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tlsConfig = cfg } }

// WithToken sends a bearer token with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithRetryTimeout bounds how long a call retries UNAVAILABLE across nodes
// when its ctx has no deadline (default 30s).
func WithRetryTimeout(d time.Duration) Option { return func(o *options) { o.retryTimeout = d } }

// WithAttemptTimeout bounds each attempt on one node until that node first
// answers (default DefaultAttemptTimeout, 5s; 0 turns the bound off; a
// negative value makes Dial fail). When an attempt's own time runs out
// while the call's ctx is still alive, the client gives up on that node and
// moves on to the next one, as for UNAVAILABLE: a node whose address
// vanished or that accepts connections but never answers then costs d, not
// the whole call. The bound ends at the node's first answer: a unary call's
// response, a Query's first page, a stream's first message (so a long
// catch-up, replay or live stream is never cut short). An attempt is
// bounded only when the call's ctx leaves more than d.
//
// Retrying a write whose attempt timed out is safe because every Append and
// AppendIf carries an idempotency key, the same on every attempt of one
// call: a write that did reach the node is not appended twice. Reads are
// always safe to retry. Admin calls that are not idempotent (Join, Remove,
// TransferLeadership, SnapshotRestore) use the bound only while connecting
// and never send twice; see Client.Admin.
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *options) { o.attemptTimeout = d }
}

// WithLogger sets the logger for reconnects and retries.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// DefaultMaxStreamLag is WithMaxStreamLag's bound when the option is not
// given.
const DefaultMaxStreamLag = 5 * time.Second

// WithMaxStreamLag moves a stream (live or durable) to another node when
// the node serving it falls behind the cluster by more than d (default
// DefaultMaxStreamLag, 5 s; 0 turns moving off). A node falls behind when
// it cannot follow the Raft leader: it is cut off from the other nodes'
// Raft traffic, the leader's replication backs off after such a cut, or it
// sees no leader. Its streams then deliver nothing new, while writes are
// acknowledged elsewhere. The node reports how far behind it may be
// (StreamProgress messages, a few per d); past d the client resumes the
// stream on the next node as it does when a node fails: a live stream
// after the last event delivered, a durable stream from its stored cursor
// once the stale node has stored the acknowledged cursor and released the
// name. Nothing is skipped or delivered twice by the move. Nodes older
// than this option send no progress, and their streams are not moved.
func WithMaxStreamLag(d time.Duration) Option {
	return func(o *options) { o.maxStreamLag, o.lagSet = max(d, 0), true }
}
