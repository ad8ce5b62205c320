package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"

	"github.com/factstr/factstr-go/internal/configerr"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns, and by
// the errors of calls given bad arguments (a bad Meta in UpdateMeta, a bad
// address in JoinNow).
var ErrInvalidConfig = errors.New("membership: invalid config")

// ConfigError names the field that is wrong and says how to fix it. It
// unwraps to ErrInvalidConfig. It is the module's one config error type,
// shared with the other packages' Validate.
type ConfigError = configerr.Error

const (
	// DefaultRetryInterval is how often Join is retried while no seed answers.
	DefaultRetryInterval = time.Second

	// DefaultDeadNodeReclaimTime is how long after a member was declared dead
	// another address may take over its name. memberlist's default of 0 means
	// "never while the dead entry is remembered", so a pod that restarts with
	// a new IP is refused as a conflicting address until every peer has
	// reaped the old entry (GossipToTheDeadTime, 30s, plus a probe round) and
	// then hears from the new one (memberlist's Config.DeadNodeReclaimTime).
	//
	// Weaviate uses 60s, but in memberlist v0.7.0 anything above ~30s is the
	// same as 0: the dead entry is reaped before the reclaim time is reached.
	// We pick 15s. The reclaim time only guards one case: a node wrongly
	// declared dead (a long GC pause, a short partition) that is in fact
	// still running at its old address. It refutes within a few probe
	// intervals; 15s is several suspicion timeouts (4s on a small LAN
	// cluster), so the genuine owner wins that race. A restarted pod is then
	// accepted about 20s after its old address stopped answering (death
	// detection, reclaim time, one RetryInterval of re-announcing) instead of
	// 35s or more. Identity is not protected by this timer anyway: the
	// incarnation in Meta is what tells a wiped node from the old one.
	DefaultDeadNodeReclaimTime = 15 * time.Second

	// DefaultTombstoneTimeout is how long Dead and Left members stay in
	// Members after they went away (serf's tombstone timeout). A Raft
	// reconcile loop needs to see failed members long enough to act on them;
	// forgetting them eventually keeps a cluster whose pods get new names
	// (a Deployment, repeated scale up/down) from growing without bound.
	DefaultTombstoneTimeout = 24 * time.Hour

	// DefaultLeaveTimeout bounds Leave when it is given no timeout.
	DefaultLeaveTimeout = 5 * time.Second

	// advertiseResolveTimeout bounds how long Start retries resolving a DNS
	// name in AdvertiseAddr.
	advertiseResolveTimeout = 30 * time.Second

	// defaultBroadcastTimeout bounds UpdateMeta's wait for the gossip of the
	// new meta when ctx has no deadline (serf's BroadcastTimeout).
	defaultBroadcastTimeout = 5 * time.Second
)

// Config configures a node's gossip layer. Only BindAddr and Meta are
// required; Validate says what else is wrong.
type Config struct {
	// BindAddr is the host:port memberlist listens on, TCP and UDP on the
	// same port. The host must be an IP (empty means 0.0.0.0). Port 0 picks
	// a free port; read it back from LocalMember().Addr (tests).
	BindAddr string

	// AdvertiseAddr is the host:port other nodes reach us on. Empty means
	// the bound IP, or a private IP of this host when bound to 0.0.0.0. The
	// host may be a DNS name (a Kubernetes pod's stable name); memberlist
	// only speaks IPs, so it is resolved once, at Start, which retries for
	// up to 30s while the name does not resolve yet.
	AdvertiseAddr string

	// Join lists the seeds as host:port. A host may be a DNS name that
	// resolves to several addresses (a Kubernetes headless Service): every
	// address is tried, and the name is resolved again on every retry so
	// pods that appear later are found. Empty means "wait to be joined".
	Join []string

	// RetryInterval is the pause between join attempts. Zero means
	// DefaultRetryInterval. Joining runs in the background until a seed
	// answers or the ctx given to Start ends. After that it runs again only
	// when this node finds itself alone, or when a peer does not hold this
	// node's current address (after a restart with a new IP), to
	// re-announce it until the peer does.
	RetryInterval time.Duration

	// Resolver turns a host name into addresses (IPs as strings). Nil means
	// net.DefaultResolver.LookupHost. It is a field so tests can stand in
	// for DNS; memberlist's own resolver (a TCP ANY query to the first
	// server in /etc/resolv.conf) is never used.
	Resolver func(ctx context.Context, host string) ([]string, error)

	// SecretKey, if set, encrypts and authenticates gossip with AES-GCM. It
	// must be 16, 24 or 32 bytes and the same on every node. Without it
	// anyone who can reach BindAddr can join and read the member list.
	SecretKey []byte

	// TombstoneTimeout is how long Dead and Left members are remembered.
	// Zero means DefaultTombstoneTimeout.
	TombstoneTimeout time.Duration

	// Tune, if set, adjusts memberlist's configuration after our defaults
	// (memberlist.DefaultLANConfig with DeadNodeReclaimTime set) are
	// applied: timings, Label, CIDRsAllowed. Fields this package owns (name,
	// addresses, delegates, logger, SecretKey) are set again afterwards.
	// FastTimings is a ready-made Tune for tests.
	Tune func(*memberlist.Config)

	// Meta is what this node gossips about itself.
	Meta Meta

	// Logger receives our logs and memberlist's. Nil means slog.Default().
	Logger *slog.Logger
}

// FastTimings shrinks memberlist's timers so that tests on loopback converge
// in tens of milliseconds and detect a dead node in about a second. Use it
// as Config.Tune. Do not use it on a real network: probe timeouts this short
// turn every GC pause into a suspicion.
func FastTimings(c *memberlist.Config) {
	c.TCPTimeout = time.Second
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = time.Second
	c.GossipToTheDeadTime = 2 * time.Second
	c.DeadNodeReclaimTime = 500 * time.Millisecond
	// The suspicion timeout is SuspicionMult*ProbeInterval in a small
	// cluster: 800ms, enough for a busy -race run to refute.
	c.SuspicionMult = 4
}

// Validate checks every field and reports every problem found, each as a
// *ConfigError wrapping ErrInvalidConfig. Start calls it; so can a command
// line parser that wants to fail before binding anything.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, configerr.New(ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}

	bindHost, bindPort, bindErr := splitHostPort(c.BindAddr, true)
	if bindErr != nil {
		bad("BindAddr", "%v; use ip:port such as 0.0.0.0:7946, or 127.0.0.1:0 in tests", bindErr)
	} else if bindHost != "" && net.ParseIP(bindHost) == nil {
		bad("BindAddr", "host %q is not an IP; memberlist binds to IPs only (use 0.0.0.0 and set AdvertiseAddr to the name)", bindHost)
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitHostPort(c.AdvertiseAddr, false)
		switch {
		case err != nil:
			bad("AdvertiseAddr", "%v; use the host:port peers reach us on, such as pod-0.factstr.ns.svc:7946", err)
		case host == "" || isUnspecified(host):
			bad("AdvertiseAddr", "%q is not an address peers can reach; set this node's routable IP or DNS name", c.AdvertiseAddr)
		case bindErr == nil && bindPort == 0:
			// memberlist overwrites the advertised port with the one it
			// picked, so the configured one would be silently ignored.
			bad("AdvertiseAddr", "cannot be combined with BindAddr port 0; bind a fixed port or leave AdvertiseAddr empty")
		}
	} else if bindErr == nil && bindHost != "" && isUnspecified(bindHost) && net.ParseIP(bindHost).To4() == nil {
		// memberlist only picks a private IP for "0.0.0.0"; with "::" it
		// would advertise "::", which nobody can dial.
		bad("AdvertiseAddr", "must be set when BindAddr is %q; memberlist can only pick an address to advertise for 0.0.0.0", c.BindAddr)
	}

	for i, seed := range c.Join {
		host, _, err := splitHostPort(seed, false)
		if err != nil {
			bad(fmt.Sprintf("Join[%d]", i), "%v; use host:port such as factstr-headless.ns.svc:7946", err)
		} else if host == "" {
			bad(fmt.Sprintf("Join[%d]", i), "%q has no host", seed)
		}
	}
	if c.RetryInterval < 0 {
		bad("RetryInterval", "%v is negative; use 0 for the default of %v", c.RetryInterval, DefaultRetryInterval)
	}
	if c.TombstoneTimeout < 0 {
		bad("TombstoneTimeout", "%v is negative; use 0 for the default of %v", c.TombstoneTimeout, DefaultTombstoneTimeout)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		bad("SecretKey", "is %d bytes; AES needs 16, 24 or 32 (e.g. `openssl rand 32`)", len(c.SecretKey))
	}

	for _, err := range validateMeta(c.Meta) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateMeta checks a Meta on its own; Validate and UpdateMeta share it.
func validateMeta(m Meta) []*ConfigError {
	var errs []*ConfigError
	bad := func(field, format string, args ...any) {
		if field == "" {
			field = "Meta"
		} else {
			field = "Meta." + field
		}
		errs = append(errs, configerr.New(ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}

	switch {
	case m.NodeID == "":
		bad("NodeID", "must be set; use a name that is stable for this data directory, such as the pod name")
	case strings.IndexFunc(m.NodeID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		bad("NodeID", "%q contains whitespace or control characters; use a plain name such as the pod name", m.NodeID)
	case strings.Contains(m.NodeID, "/"):
		// memberlist reads "name/addr" in join addresses as a node name.
		bad("NodeID", "%q contains '/'; use a plain name such as the pod name", m.NodeID)
	}
	if host, _, err := splitHostPort(m.RaftAddr, false); err != nil {
		bad("RaftAddr", "%v; use the host:port peers dial for Raft, such as pod-0.factstr.ns.svc:7000", err)
	} else if host == "" || isUnspecified(host) {
		bad("RaftAddr", "%q is not an address peers can dial; use this node's routable IP or DNS name", m.RaftAddr)
	}
	if host, _, err := splitHostPort(m.GRPCAddr, false); err != nil {
		bad("GRPCAddr", "%v; use the host:port of this node's API, such as pod-0.factstr.ns.svc:7001", err)
	} else if host == "" || isUnspecified(host) {
		bad("GRPCAddr", "%q is not an address peers can dial; use this node's routable IP or DNS name", m.GRPCAddr)
	}
	if m.Incarnation == "" {
		bad("Incarnation", "must be set; use IncarnationFile(dataDir) so a wiped data directory is recognised")
	}
	if m.BootstrapExpect < 0 {
		bad("BootstrapExpect", "%d is negative; use 0 for a node that never bootstraps, or the number of initial servers", m.BootstrapExpect)
	}
	if len(errs) == 0 {
		if buf, err := encodeMeta(m, true); err != nil {
			bad("", "cannot be encoded: %v", err)
		} else if len(buf) > memberlist.MetaMaxSize {
			bad("", "encodes to %d bytes, memberlist allows %d; shorten the addresses, Version or ClusterID", len(buf), memberlist.MetaMaxSize)
		}
	}
	return errs
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.TombstoneTimeout == 0 {
		c.TombstoneTimeout = DefaultTombstoneTimeout
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver.LookupHost
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Join = append([]string(nil), c.Join...)
	c.SecretKey = append([]byte(nil), c.SecretKey...)
	return c
}

// memberlistConfig translates c into a memberlist.Config. advertiseIP is
// AdvertiseAddr's host, already resolved. d supplies the delegates.
func (c Config) memberlistConfig(advertiseIP string, d *delegate, logger *slog.Logger) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.DeadNodeReclaimTime = DefaultDeadNodeReclaimTime
	if c.Tune != nil {
		c.Tune(mc)
	}

	bindHost, bindPort, err := splitHostPort(c.BindAddr, true)
	if err != nil {
		return nil, err
	}
	if bindHost == "" {
		bindHost = "0.0.0.0"
	}
	mc.Name = c.Meta.NodeID
	mc.BindAddr = bindHost
	mc.BindPort = bindPort
	mc.AdvertiseAddr = ""
	mc.AdvertisePort = bindPort
	if c.AdvertiseAddr != "" {
		_, port, err := splitHostPort(c.AdvertiseAddr, false)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr = advertiseIP
		mc.AdvertisePort = port
	}
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.Alive = d
	mc.Merge = d
	mc.LogOutput = nil
	mc.Logger = newStdLogger(logger)
	mc.SecretKey = nil
	mc.Keyring = nil
	if len(c.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), c.SecretKey...)
	}
	return mc, nil
}

// splitHostPort splits addr and checks the port.
func splitHostPort(addr string, allowZeroPort bool) (host string, port int, err error) {
	if addr == "" {
		return "", 0, errors.New("must be set")
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (%v)", addr, err)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q has port %q, not a number in 0..65535", addr, ps)
	}
	if p == 0 && !allowZeroPort {
		return "", 0, fmt.Errorf("%q has port 0, which peers cannot dial", addr)
	}
	return host, int(p), nil
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
