package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/factstr/factstr-go/internal/configerr"
)

var (
	// ErrShutdown is returned by calls made after Shutdown.
	ErrShutdown = errors.New("membership: shut down")
	// ErrLeft is returned by calls that make no sense after Leave.
	ErrLeft = errors.New("membership: this node has left the cluster")
)

// Membership is a running gossip layer. Create it with Start; it is safe for
// concurrent use.
//
// It owns memberlist and the node's life in the cluster: joining, meta
// updates, Leave and Shutdown. What memberlist reports lands in parts of
// their own: the member view and its subscribers (view), this node's meta
// (meta), the conflict counts (conflicts), all fed by the gossip delegate
// (gossip).
type Membership struct {
	cfg    Config // with defaults filled in
	name   string // memberlist node name == Meta.NodeID, never changes
	logger *slog.Logger
	ml     *memberlist.Memberlist

	meta      *localMeta
	view      *memberView
	conflicts *conflictLog
	gossip    *delegate

	// updateMu serialises memberlist.UpdateNode calls (UpdateMeta, Leave):
	// UpdateNode writes the local node's state outside memberlist's lock,
	// so two at once race inside memberlist.
	updateMu sync.Mutex

	// lifeMu serialises Leave and Shutdown: memberlist panics if Leave is
	// called after Shutdown.
	lifeMu     sync.Mutex
	left       bool
	shut       bool
	stopJoin   context.CancelFunc
	joinDone   chan struct{} // closed when the join loop has returned
	shutdownCh chan struct{} // closed by Shutdown

	// joinMu serialises join rounds, so that the gossip delegate knows the
	// one address being contacted.
	joinMu sync.Mutex
}

// Start validates cfg, binds the gossip port and starts memberlist. If
// cfg.Join is set it joins in the background, retrying every RetryInterval
// until a seed answers or ctx ends; Start does not wait for that. ctx also
// bounds resolving AdvertiseAddr. Pass a ctx that lives as long as the node
// should keep trying to find its peers, and call Shutdown when done.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger.With("logger", "membership")

	advertiseIP := ""
	if cfg.AdvertiseAddr != "" {
		ip, err := resolveAdvertise(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		advertiseIP = ip
	}

	meta, err := newLocalMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:        cfg,
		name:       cfg.Meta.NodeID,
		logger:     logger,
		meta:       meta,
		view:       newMemberView(cfg.Meta.NodeID, cfg.TombstoneTimeout, logger),
		conflicts:  &conflictLog{},
		stopJoin:   func() {},
		joinDone:   make(chan struct{}),
		shutdownCh: make(chan struct{}),
	}
	m.gossip = &delegate{self: m.name, logger: logger, meta: m.meta, view: m.view, conflicts: m.conflicts}

	mc, err := cfg.memberlistConfig(advertiseIP, m.gossip, cfg.Logger.With("logger", "membership.memberlist"))
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	// Create calls our NotifyJoin for this node before it returns, so the
	// member view is complete from the start.
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start memberlist on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml

	if e := cfg.Meta.BootstrapExpect; e == 2 || (e > 2 && e%2 == 0) {
		// A quorum is a majority, so an even number of voters tolerates no
		// more failures than one fewer, and two voters tolerate none (etcd's
		// FAQ, "Why an odd number of cluster members?").
		logger.Warn("BootstrapExpect is even: the cluster tolerates no more failures than with one server fewer; use an odd number such as 3 or 5",
			"bootstrap_expect", e)
	}

	if len(cfg.Join) > 0 {
		joinCtx, cancel := context.WithCancel(ctx)
		m.stopJoin = cancel
		go m.joinLoop(joinCtx)
	} else {
		close(m.joinDone)
	}

	self := m.LocalMember()
	logger.Info("gossip started", "node", m.name, "addr", self.Addr, "seeds", cfg.Join,
		"incarnation", cfg.Meta.Incarnation, "bootstrap_expect", cfg.Meta.BootstrapExpect,
		"has_raft_state", cfg.Meta.HasRaftState, "cluster_id", cfg.Meta.ClusterID)
	return m, nil
}

// resolveAdvertise returns AdvertiseAddr's host as an IP. memberlist only
// takes IPs, so a Kubernetes pod's DNS name is resolved once, at Start. A
// pod's own record can lag its start by a few seconds, so failures are
// retried every RetryInterval for up to advertiseResolveTimeout (or until
// ctx ends).
func resolveAdvertise(ctx context.Context, cfg Config, logger *slog.Logger) (string, error) {
	host, _, err := net.SplitHostPort(cfg.AdvertiseAddr)
	if err != nil {
		return "", configerr.New(ErrInvalidConfig, "AdvertiseAddr", err.Error())
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	deadline := time.Now().Add(advertiseResolveTimeout)
	for {
		ip, err := resolveAdvertiseOnce(ctx, cfg.Resolver, host)
		if err == nil {
			return ip, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		if time.Now().After(deadline) {
			return "", err
		}
		logger.Warn("cannot resolve AdvertiseAddr yet; retrying", "addr", cfg.AdvertiseAddr,
			"retry_interval", cfg.RetryInterval, "error", err)
		t := time.NewTimer(cfg.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// resolveAdvertiseOnce prefers IPv4 when a name has both, since that is
// what a dual-stack pod's peers are most likely to reach.
func resolveAdvertiseOnce(ctx context.Context, resolver func(context.Context, string) ([]string, error), host string) (string, error) {
	addrs, err := resolver(ctx, host)
	if err != nil {
		return "", fmt.Errorf("membership: resolve AdvertiseAddr %q: %w", host, err)
	}
	var first string
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			continue
		}
		if ip.To4() != nil {
			return ip.String(), nil
		}
		if first == "" {
			first = ip.String()
		}
	}
	if first == "" {
		return "", fmt.Errorf("membership: resolve AdvertiseAddr %q: no IP address in %q", host, addrs)
	}
	return first, nil
}

// Members returns every member this node knows, itself included, in NodeID
// order. Dead and Left members stay for Config.TombstoneTimeout.
func (m *Membership) Members() []Member { return m.view.list() }

// Lookup returns the member with the given NodeID.
func (m *Membership) Lookup(nodeID string) (Member, bool) { return m.view.lookup(nodeID) }

// LocalMeta returns the meta this node currently gossips.
func (m *Membership) LocalMeta() Meta { return m.meta.get() }

// LocalMember returns this node as the member view has it; its Addr is the
// gossip address peers use (useful with BindAddr port 0).
func (m *Membership) LocalMember() Member {
	s, _ := m.Lookup(m.name)
	return s
}

// UpdateMeta replaces this node's meta and gossips it, for instance to
// announce the ClusterID and HasRaftState after bootstrapping. NodeID cannot
// change: it is the memberlist node name.
//
// The new meta takes effect locally at once. UpdateMeta then waits, up to
// ctx's deadline (5s without one), until memberlist has finished
// broadcasting it. An error from that wait does not undo the update; the
// meta still reaches everyone with the next push/pull.
func (m *Membership) UpdateMeta(ctx context.Context, meta Meta) error {
	var errs []error
	for _, e := range validateMeta(meta) {
		errs = append(errs, e)
	}
	if meta.NodeID != m.name {
		errs = append(errs, configerr.New(ErrInvalidConfig, "Meta.NodeID", fmt.Sprintf(
			"cannot change from %q to %q: it is the memberlist node name; restart the node to change it", m.name, meta.NodeID)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := m.checkOpen(); err != nil {
		return err
	}

	timeout := defaultBroadcastTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		// memberlist reads a zero timeout as "wait forever".
		timeout = time.Millisecond
	}

	m.updateMu.Lock()
	if err := m.meta.set(meta); err != nil {
		m.updateMu.Unlock()
		return err
	}
	// UpdateNode cannot be cancelled; its timeout bounds the goroutine,
	// which holds updateMu until UpdateNode returns even if we return
	// early on ctx.
	done := make(chan error, 1)
	go func() {
		defer m.updateMu.Unlock()
		done <- m.ml.UpdateNode(timeout)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("membership: meta updated locally, gossip not confirmed: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("membership: meta updated locally, gossip not confirmed: %w", ctx.Err())
	}
}

// Leave announces that this node is leaving on purpose, so peers report it
// Left rather than Dead, and stops the background join. It keeps gossip
// running until Shutdown so the announcement can spread. timeout bounds the
// whole call; zero or less means DefaultLeaveTimeout.
//
// Leave is for an admin "leave" (the node is being removed from the
// cluster). A rolling restart should call only Shutdown: peers then see the
// node fail and come back, and the Raft configuration keeps its size
// (the lesson of hashicorp/consul-helm#764).
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut {
		return ErrShutdown
	}
	if m.left {
		return nil
	}
	m.left = true
	m.stopJoin() // a rejoin after the leave would undo it

	if timeout <= 0 {
		timeout = DefaultLeaveTimeout
	}
	half := timeout / 2

	// First gossip "leaving" in our meta and wait until it has been sent.
	// memberlist drops a queued broadcast about a node when a newer one
	// about the same node is queued, so the leave message must not be
	// queued until this one is out.
	m.updateMu.Lock()
	m.meta.markLeaving()
	if err := m.ml.UpdateNode(half); err != nil {
		m.logger.Warn("leaving notice not confirmed sent; some peers may report this node failed instead of left", "error", err)
	}
	m.updateMu.Unlock()

	if err := m.ml.Leave(timeout - half); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	m.logger.Info("left the cluster", "node", m.name)
	return nil
}

// Shutdown stops gossip without announcing anything: peers will declare
// this node dead. It closes every subscription channel and makes pending
// WaitBootstrap calls return ErrShutdown. It is safe to call more than once.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	if m.shut {
		m.lifeMu.Unlock()
		return nil
	}
	m.shut = true
	m.lifeMu.Unlock()

	m.stopJoin()
	err := m.ml.Shutdown()
	close(m.shutdownCh)
	// The join loop checks ctx between addresses, so this waits at most
	// one memberlist TCPTimeout.
	<-m.joinDone

	m.view.close()

	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

// checkOpen reports ErrShutdown or ErrLeft.
func (m *Membership) checkOpen() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	switch {
	case m.shut:
		return ErrShutdown
	case m.left:
		return ErrLeft
	}
	return nil
}
