package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/factstr/factstr-go/internal/configerr"
)

// joinWarnEvery limits how often a failing background join logs at Warn;
// attempts in between log at Debug.
const joinWarnEvery = 30 * time.Second

// errOnlySelf is the join error when seeds answered but none of them was
// another node: typically a headless Service that so far resolves only to
// this pod.
var errOnlySelf = errors.New("seeds answered, but no other member is alive (do the seeds resolve only to this node?)")

// JoinNow contacts addrs (host:port; a host may be a DNS name, all of whose
// addresses are tried) and merges their member lists, for an admin "join
// <addr>". It returns how many addresses answered. Like memberlist's Join,
// it fails only if none did. ctx is checked between addresses; one attempt
// can take up to memberlist's TCPTimeout.
func (m *Membership) JoinNow(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, configerr.New(ErrInvalidConfig, "addrs", "is empty; give at least one host:port")
	}
	var errs []error
	for i, a := range addrs {
		if host, _, err := splitHostPort(a, false); err != nil {
			errs = append(errs, configerr.New(ErrInvalidConfig, fmt.Sprintf("addrs[%d]", i), err.Error()))
		} else if host == "" {
			errs = append(errs, configerr.New(ErrInvalidConfig, fmt.Sprintf("addrs[%d]", i), fmt.Sprintf("%q has no host", a)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if err := m.checkOpen(); err != nil {
		return 0, err
	}
	n, err := m.join(ctx, addrs)
	if n == 0 {
		return 0, fmt.Errorf("membership: join %q: %w", addrs, err)
	}
	m.logger.Info("joined", "addrs", addrs, "contacted", n)
	return n, nil
}

// joinLoop joins the seeds in the background. Until a seed answers it tries
// every RetryInterval. After that it stays as a watchdog, again every
// RetryInterval, and rejoins when this node is alone (it was partitioned
// long enough for everyone to reap everyone else), or re-announces itself
// when peers still hold an older address for its NodeID (a pod restarted
// with a new IP; see DefaultDeadNodeReclaimTime). It returns when ctx ends, which Leave and
// Shutdown also cause.
func (m *Membership) joinLoop(ctx context.Context) {
	defer close(m.joinDone)

	var (
		joined   bool
		attempts int
		lastWarn time.Time
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if !joined {
				m.logger.Warn("stopped trying to join: no seed answered", "seeds", m.cfg.Join,
					"attempts", attempts, "reason", context.Cause(ctx))
			}
			return
		case <-timer.C:
		}
		timer.Reset(m.cfg.RetryInterval)

		var why string
		switch {
		case !joined:
			why = "join"
		case m.view.alone():
			why = "rejoin: no other member is alive"
		case m.gossip.staleSelf.Swap(false):
			why = reannounce
		default:
			continue
		}

		attempts++
		n, err := m.join(ctx, m.cfg.Join)
		if ctx.Err() != nil {
			continue // the select above returns
		}
		if n > 0 && !m.view.alone() {
			switch {
			case why == reannounce:
				m.logger.Debug("re-announced this node", "contacted", n)
			case !joined || why != "join":
				m.logger.Info("joined the cluster", "reason", why, "contacted", n, "attempts", attempts)
			}
			joined, attempts = true, 0
			continue
		}
		if err == nil {
			err = errOnlySelf
		}
		if time.Since(lastWarn) >= joinWarnEvery {
			lastWarn = time.Now()
			m.logger.Warn("cannot join yet; retrying", "reason", why, "seeds", m.cfg.Join,
				"attempts", attempts, "retry_interval", m.cfg.RetryInterval, "error", err)
		} else {
			m.logger.Debug("cannot join yet; retrying", "reason", why, "attempts", attempts, "error", err)
		}
	}
}

// reannounce is the join loop's reason when a peer may not hold this node's
// current address: another address claimed our NodeID (NotifyConflict), or
// a peer's member list showed it without our address (NotifyMerge). That
// happens after a restart with a new IP: peers refuse the new address while
// the old one is alive or suspect, and accept it only
// DeadNodeReclaimTime after declaring it dead, or once they reaped it, and
// only when they next hear from us. They say nothing when that moment comes,
// and memberlist's own push/pull may be 30s away, so we push/pull with the
// seeds every RetryInterval until a peer's list shows us as we are.
const reannounce = "re-announce: a peer does not hold this node's current address"

// join resolves seeds and pushes/pulls state with every address, except
// this node's own. It returns how many answered; the error is nil if any
// did (memberlist's Join semantics).
func (m *Membership) join(ctx context.Context, seeds []string) (int, error) {
	m.joinMu.Lock()
	defer m.joinMu.Unlock()
	addrs, errs := m.resolveSeeds(ctx, seeds)
	self := m.LocalMember().Addr
	n := 0
	for _, a := range addrs {
		if a == self {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		// One address per call so ctx is honoured between them; memberlist
		// would otherwise try them all, TCPTimeout each.
		m.gossip.contacting(a)
		c, err := m.ml.Join([]string{a})
		m.gossip.contacting("")
		n += c
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
		}
	}
	if n > 0 {
		return n, nil
	}
	if len(errs) == 0 {
		return 0, errOnlySelf
	}
	return 0, errors.Join(errs...)
}

// resolveSeeds turns host:port seeds into ip:port addresses, resolving every
// DNS name afresh (a headless Service gains addresses as pods start) and
// keeping every address it returns. Duplicates are dropped; order is kept.
func (m *Membership) resolveSeeds(ctx context.Context, seeds []string) ([]string, []error) {
	var (
		out  []string
		errs []error
		seen = make(map[string]bool)
	)
	add := func(ip, port string) {
		a := net.JoinHostPort(ip, port)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, seed := range seeds {
		host, port, err := net.SplitHostPort(seed)
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %q: %w", seed, err))
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			add(ip.String(), port)
			continue
		}
		ips, err := m.cfg.Resolver(ctx, host)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve seed %q: %w", host, err))
			continue
		}
		if len(ips) == 0 {
			errs = append(errs, fmt.Errorf("resolve seed %q: no addresses", host))
		}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				errs = append(errs, fmt.Errorf("resolve seed %q: %q is not an IP", host, s))
				continue
			}
			add(ip.String(), port)
		}
	}
	return out, errs
}
