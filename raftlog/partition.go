package raftlog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ErrPartitioned is returned by PartitionableStreamLayer.Dial while the
// layer is partitioned.
var ErrPartitioned = errors.New("raftlog: node is partitioned (fault injection)")

// PartitionableStreamLayer is a raft.StreamLayer over real TCP that can cut
// the node off the network. It exists for fault injection in tests: while
// partitioned (SetPartitioned(true)) every open connection, inbound and
// outbound, is closed, Dial fails with ErrPartitioned and accepted
// connections are closed at once. Peers therefore see real TCP errors
// (resets, EOF), not silence; for black-holing or latency use a TCP proxy
// in front of the port (see the fault-suite design).
//
// Outside tests it behaves as a plain TCP stream layer; tracking the open
// connections costs one map operation per connection, not per RPC.
//
// With WithTLS every connection, inbound and outbound, is mutual TLS (see
// tls.go); partitioning cuts the TCP connection under the TLS session.
type PartitionableStreamLayer struct {
	ln        net.Listener
	advertise net.Addr

	// serverTLS and clientTLS are nil for plain TCP.
	serverTLS, clientTLS *tls.Config
	logger               *slog.Logger
	refusals             refusalLog

	mu          sync.Mutex
	partitioned bool
	closed      bool
	conns       map[*trackedConn]struct{}
}

// StreamLayerOption configures NewPartitionableStreamLayer.
type StreamLayerOption func(*PartitionableStreamLayer) error

// WithTLS makes the layer speak mutual TLS with cfg (see Config.TLS for
// what cfg must hold and how peers are verified).
func WithTLS(cfg *tls.Config) StreamLayerOption {
	return WithTLSRootCAs(cfg, nil)
}

// WithTLSRootCAs is WithTLS with the CA pool taken from roots, called on
// every handshake, instead of cfg.RootCAs (which must then be nil); see
// Config.TLSRootCAs. A nil roots makes it WithTLS.
func WithTLSRootCAs(cfg *tls.Config, roots func() *x509.CertPool) StreamLayerOption {
	return func(s *PartitionableStreamLayer) error {
		if err := checkTLS(cfg, roots); err != nil {
			return fmt.Errorf("raftlog: TLS: %w", err)
		}
		s.serverTLS, s.clientTLS = peerTLSConfigs(cfg, roots)
		return nil
	}
}

// WithLogger sets the logger for refused connections (default
// slog.Default()).
func WithLogger(l *slog.Logger) StreamLayerOption {
	return func(s *PartitionableStreamLayer) error {
		if l != nil {
			s.logger = l
		}
		return nil
	}
}

var _ raft.StreamLayer = (*PartitionableStreamLayer)(nil)

// NewPartitionableStreamLayer listens on bindAddr and advertises
// advertiseAddr to peers, or the listener's address if advertiseAddr is
// empty. advertiseAddr may be a DNS name; it is not resolved here, so a
// pod can start before its own DNS record exists.
func NewPartitionableStreamLayer(ctx context.Context, bindAddr, advertiseAddr string, opts ...StreamLayerOption) (*PartitionableStreamLayer, error) {
	s := &PartitionableStreamLayer{conns: make(map[*trackedConn]struct{}), logger: slog.Default()}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("raftlog: listen on %s: %w", bindAddr, err)
	}
	s.ln = ln
	if advertiseAddr != "" {
		s.advertise = tcpAddrString(advertiseAddr)
	} else if a, ok := ln.Addr().(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raftlog: listener address %s is not advertisable; set AdvertiseAddr", ln.Addr())
	}
	return s, nil
}

// tcpAddrString is a net.Addr for an unresolved host:port.
type tcpAddrString string

func (a tcpAddrString) Network() string { return "tcp" }
func (a tcpAddrString) String() string  { return string(a) }

// SetPartitioned cuts the node off (true) or heals it (false). Cutting off
// closes every open connection before it returns.
func (s *PartitionableStreamLayer) SetPartitioned(partitioned bool) {
	s.mu.Lock()
	s.partitioned = partitioned
	var victims []*trackedConn
	if partitioned {
		victims = s.takeConnsLocked()
	}
	s.mu.Unlock()
	cutConns(victims)
}

// Partitioned reports whether the layer is currently partitioned.
func (s *PartitionableStreamLayer) Partitioned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partitioned
}

// Dial implements raft.StreamLayer.
func (s *PartitionableStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.Partitioned() {
		return nil, fmt.Errorf("raftlog: dial %s: %w", address, ErrPartitioned)
	}
	start := time.Now()
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	var tlsConn *tls.Conn
	if s.clientTLS != nil {
		tlsConn = tls.Client(c, s.clientTLS)
	}
	// A partition may have started while we were dialling. Track before the
	// handshake so a partition cuts a handshake in progress too.
	tc, err := s.track(c, tlsConn)
	if err != nil {
		return nil, fmt.Errorf("raftlog: dial %s: %w", address, err)
	}
	if tlsConn != nil {
		if err := tc.clientHandshake(start.Add(timeout)); err != nil {
			return nil, fmt.Errorf("raftlog: dial %s: %w", address, err)
		}
	}
	return tc, nil
}

// Accept implements net.Listener. While partitioned it keeps accepting and
// closing connections rather than returning errors, so the transport's
// accept loop does not back off and log.
//
// With TLS the handshake is not done here, where a slow or hostile peer
// would stall the transport's single accept loop, but on the connection's
// first Read or Write in its own handler goroutine (see
// trackedConn.serverHandshake).
func (s *PartitionableStreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		var tlsConn *tls.Conn
		if s.serverTLS != nil {
			tlsConn = tls.Server(c, s.serverTLS)
		}
		tc, err := s.track(c, tlsConn)
		if errors.Is(err, ErrPartitioned) {
			continue
		}
		if err != nil {
			return nil, err
		}
		tc.inbound = true
		return tc, nil
	}
}

// Close closes the listener and every open connection. It is idempotent.
func (s *PartitionableStreamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	victims := s.takeConnsLocked()
	s.mu.Unlock()
	err := s.ln.Close()
	cutConns(victims)
	return err
}

// Addr implements net.Listener: the advertised address, which is what the
// transport reports as its LocalAddr and what peers store in the
// configuration.
func (s *PartitionableStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// ListenAddr is the address actually bound, which differs from Addr when
// an AdvertiseAddr is set.
func (s *PartitionableStreamLayer) ListenAddr() net.Addr { return s.ln.Addr() }

// track registers c, or closes it if the layer is partitioned or closed.
// tlsConn, if not nil, is the TLS session over c that users read and write.
func (s *PartitionableStreamLayer) track(c net.Conn, tlsConn *tls.Conn) (*trackedConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		_ = c.Close()
		return nil, net.ErrClosed
	case s.partitioned:
		_ = c.Close()
		return nil, ErrPartitioned
	}
	tc := &trackedConn{Conn: c, raw: c, s: s, tls: tlsConn}
	if tlsConn != nil {
		tc.Conn = tlsConn
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *PartitionableStreamLayer) takeConnsLocked() []*trackedConn {
	out := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	clear(s.conns)
	return out
}

func (s *PartitionableStreamLayer) forget(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// trackedConn removes itself from its layer when closed by its user.
type trackedConn struct {
	net.Conn // raw, or tls over raw
	raw      net.Conn
	s        *PartitionableStreamLayer
	// cut is set when the layer closed the connection (Close or a
	// partition) rather than its user.
	cut atomic.Bool

	// tls is the TLS session over raw, nil for plain TCP. Inbound sessions
	// shake hands on first use (hsOnce).
	tls     *tls.Conn
	inbound bool
	hsOnce  sync.Once
	hsErr   error
}

func (c *trackedConn) Close() error {
	c.s.forget(c)
	return c.Conn.Close()
}

// Read reports a connection the layer cut as io.EOF, which is what it is to
// the reader. NetworkTransport's inbound handler logs every read error
// except io.EOF at ERROR level, so without this each Close would log one
// "use of closed network connection" error per open connection.
//
// An inbound TLS connection whose handshake fails reads as io.EOF as well:
// the refusal is logged once by the layer (serverHandshake), not again by
// the transport as a decode error.
func (c *trackedConn) Read(p []byte) (int, error) {
	if err := c.serverHandshake(); err != nil {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.cut.Load() && errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if err := c.serverHandshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// cutConns closes connections taken from the layer. It closes the TCP
// connection, not the TLS session: a cut link sends no close_notify.
func cutConns(conns []*trackedConn) {
	for _, c := range conns {
		c.cut.Store(true)
		_ = c.raw.Close()
	}
}
