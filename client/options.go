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
	tlsConfig    *tls.Config
	token        string
	dialOpts     []grpc.DialOption
	retryTimeout time.Duration
	logger       *slog.Logger
}

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

// WithLogger sets the logger for reconnects and retries.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
