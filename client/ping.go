package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/factstr/factstr-go/contract"
)

// ErrNoNodeAnswers is matched (errors.Is) by the error of Ping when no
// target answered.
var ErrNoNodeAnswers = errors.New("client: no node answers")

// UnreachableError is the error of Ping: no target answered. Reasons[i]
// says why Targets[i] did not.
type UnreachableError struct {
	Targets []string
	Reasons []string
}

func (e *UnreachableError) Error() string {
	parts := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		parts[i] = fmt.Sprintf("%s (%s)", t, e.Reasons[i])
	}
	return "no node answers at " + strings.Join(parts, ", ")
}

// Is makes errors.Is(err, ErrNoNodeAnswers) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrNoNodeAnswers }

// Ping returns nil as soon as one target answers, and an
// *UnreachableError when none does. It asks every target at once through
// the gRPC health service, which nodes answer without a token: a nil
// error means a node listens, not that the token or the cluster is fine.
// Each target gets the attempt timeout (WithAttemptTimeout) or what is
// left of ctx, whichever ends first.
//
// Dial itself stays lazy, so programs may dial before their nodes are up
// and calls retry across nodes; Ping is for tools that would rather fail
// at once with a clear message than retry against addresses where nothing
// listens.
func (c *Client) Ping(ctx context.Context) error {
	if c.isClosed() {
		return contract.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		node int
		err  error
	}
	answers := make(chan answer, len(c.conns))
	for i, conn := range c.conns {
		go func() {
			a := c.newAttempt(ctx)
			defer a.end()
			_, err := healthpb.NewHealthClient(conn).Check(a.ctx, &healthpb.HealthCheckRequest{})
			if err != nil && a.timedOut() {
				err = status.Errorf(codes.DeadlineExceeded, "no answer within %v", c.opts.attemptTimeout)
			}
			answers <- answer{i, err}
		}()
	}
	reasons := make([]string, len(c.conns))
	for range c.conns {
		a := <-answers
		if answered(a.err) {
			return nil
		}
		reasons[a.node] = shortReason(a.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("client: ping: %w", err)
	}
	return &UnreachableError{Targets: c.Targets(), Reasons: reasons}
}

// answered reports whether err came from a node that answered (any status
// but the ones a missing, unreachable or silent node produces).
func answered(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return false
	}
	return true
}

var dialPrefix = regexp.MustCompile(`^(connection error: desc = )?"?(transport: )?(Error while dialing:? )?`)

// shortReason turns a connection error into its cause: "connection
// refused", "no such host", "tls: ...", not three layers of gRPC wording.
func shortReason(err error) string {
	msg := status.Convert(err).Message()
	msg = strings.TrimSuffix(dialPrefix.ReplaceAllString(msg, ""), `"`)
	if strings.HasPrefix(msg, "dial tcp") {
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return msg
}

// checkTarget refuses a target without a scheme that is not host:port:
// gRPC would silently dial port 443.
func checkTarget(t string) error {
	if strings.Contains(t, "://") || strings.HasPrefix(t, "unix:") || strings.HasPrefix(t, "unix-abstract:") {
		return nil
	}
	_, port, err := net.SplitHostPort(t)
	if err != nil || port == "" {
		return fmt.Errorf("client: target %q is not host:port (no port: a node listens on 7400 by default)", t)
	}
	return nil
}
