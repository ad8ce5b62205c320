// Command e2eclient is the client side of deploy/k8s/e2e.sh: it appends
// through the Go client and records every acknowledged append, then checks
// that each node holds all of them.
//
//	e2eclient load   --targets A,B,C --acked FILE [--writers 4] [--count N] [--tag T]
//	e2eclient verify --targets A,B,C --acked FILE
//	e2eclient cluster --targets A,B,C --raft-suffix .svc-name.ns.svc.cluster.local:7401 [--voters 3]
//
// load appends single events of type "e2e" until it has N acknowledged
// (--count) or gets SIGINT/SIGTERM, appending "seq payload" lines to FILE
// for the acknowledged ones only, and prints progress to stderr. verify
// reads each target alone with a local read (after it applied the highest
// acknowledged sequence number) and fails unless every acknowledged event is
// there, unchanged, and all targets hold the same events. cluster asks each
// target for its status and prints the leader if all agree on it and each
// reports the given number of healthy voters, every one with a Raft address
// of its node id plus --raft-suffix (the pods' DNS names).
//
// The nodes run with a cluster key and a token: FACTSTR_TLS_CA names the
// CA certificate (factstr-node ca-cert) the nodes are verified against and
// FACTSTR_TOKEN is the token, as for factstr-node's client commands.
//
// Targets are host:port, or gRPC resolver targets such as
// dns://10.244.0.1:53/factstr-0.factstr-headless.ns.svc.cluster.local:7400,
// which are re-resolved when a pod comes back with a new IP.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

const eventType = "e2e"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2eclient load|verify [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "load":
		err = load(ctx, os.Args[2:])
	case "verify":
		err = verify(ctx, os.Args[2:])
	case "cluster":
		err = cluster(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2eclient:", err)
		os.Exit(1)
	}
}

func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	targets := fs.String("targets", "", "comma-separated gRPC targets")
	ackedPath := fs.String("acked", "", "file to append acknowledged events to")
	writers := fs.Int("writers", 4, "concurrent appenders")
	count := fs.Int("count", 0, "stop after this many acknowledged appends (0: until signalled)")
	tag := fs.String("tag", "load", "tag put into every payload")
	_ = fs.Parse(args)
	if *targets == "" || *ackedPath == "" {
		return errors.New("load needs --targets and --acked")
	}
	f, err := os.OpenFile(*ackedPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	store, err := client.Dial(ctx, strings.Split(*targets, ","), append(security(), client.WithRetryTimeout(60*time.Second))...)
	if err != nil {
		return err
	}
	defer store.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu              sync.Mutex
		acked, failed   atomic.Int64
		lastErr         atomic.Value
		slowest         atomic.Int64
		wg              sync.WaitGroup
		start           = time.Now()
		unixNano, runID = time.Now().UnixNano(), os.Getpid()
	)
	for w := range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				payload := fmt.Sprintf(`{"tag":%q,"run":"%d-%d","w":%d,"n":%d}`, *tag, runID, unixNano, w, i)
				t0 := time.Now()
				actx, acancel := context.WithTimeout(ctx, 90*time.Second)
				res, err := store.Append(actx, []contract.NewEvent{{Type: eventType, Payload: json.RawMessage(payload)}})
				acancel()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						lastErr.Store(err.Error())
						time.Sleep(200 * time.Millisecond)
					}
					continue
				}
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
				mu.Lock()
				_, werr := fmt.Fprintf(f, "%d %s\n", res.FirstSequenceNumber, payload)
				mu.Unlock()
				if werr != nil {
					lastErr.Store(werr.Error())
					cancel()
					return
				}
				if n := acked.Add(1); *count > 0 && n >= int64(*count) {
					cancel()
				}
			}
		}()
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	report := func(prefix string) {
		suffix := ""
		if le, _ := lastErr.Load().(string); le != "" {
			suffix = "; last error: " + le
		}
		fmt.Fprintf(os.Stderr, "%s: %d acknowledged, %d failed calls, slowest ack %v, %.0f/s%s\n", prefix,
			acked.Load(), failed.Load(), time.Duration(slowest.Load()).Round(time.Millisecond),
			float64(acked.Load())/time.Since(start).Seconds(), suffix)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			report("load done")
			return nil
		case <-tick.C:
			report("load")
		}
	}
}

func verify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	targets := fs.String("targets", "", "comma-separated gRPC targets (each read alone)")
	ackedPath := fs.String("acked", "", "file of acknowledged events (from load)")
	_ = fs.Parse(args)
	if *targets == "" || *ackedPath == "" {
		return errors.New("verify needs --targets and --acked")
	}
	acked, err := readAcked(*ackedPath)
	if err != nil {
		return err
	}
	if len(acked) == 0 {
		return errors.New("no acknowledged appends to verify")
	}
	var maxSeq uint64
	for s := range acked {
		maxSeq = max(maxSeq, s)
	}
	// Appends in flight when the writers stopped may have committed after
	// the highest acknowledged one: every node must first apply up to the
	// head a linearizable read sees, or their logs could differ at the end.
	all, err := client.Dial(ctx, strings.Split(*targets, ","), append(security(), client.WithRetryTimeout(90*time.Second))...)
	if err != nil {
		return err
	}
	head, err := all.Query(ctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{eventType}}}})
	_ = all.Close()
	if err != nil {
		return fmt.Errorf("linearizable read of the head: %w", err)
	}
	if head.CurrentContextVersion < maxSeq {
		return fmt.Errorf("a linearizable read ends at #%d, before the acknowledged #%d", head.CurrentContextVersion, maxSeq)
	}
	maxSeq = head.CurrentContextVersion
	var first []contract.EventRecord
	var problems []string
	for i, t := range strings.Split(*targets, ",") {
		store, err := client.Dial(ctx, []string{t}, append(security(), client.WithRetryTimeout(90*time.Second))...)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(contract.WithReadOptions(ctx,
			contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: maxSeq}), 2*time.Minute)
		res, err := store.Query(rctx, contract.EventQuery{Filters: []contract.EventFilter{{EventTypes: []string{eventType}}}})
		cancel()
		_ = store.Close()
		if err != nil {
			return fmt.Errorf("local read on %s: %w", t, err)
		}
		got := make(map[uint64]string, len(res.Events))
		for _, e := range res.Events {
			got[e.SequenceNumber] = string(e.Payload)
		}
		missing := 0
		for s, p := range acked {
			if g, ok := got[s]; !ok || !sameJSON(g, p) {
				if missing < 5 {
					problems = append(problems, fmt.Sprintf("%s: acknowledged #%d %s: got %q", t, s, p, g))
				}
				missing++
			}
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d of %d acknowledged appends missing or changed", t, missing, len(acked)))
		}
		if i == 0 {
			first = res.Events
		} else if !sameEvents(first, res.Events) {
			problems = append(problems, fmt.Sprintf("%s holds %d events of type %s, the first target %d, or they differ", t, len(res.Events), eventType, len(first)))
		}
		fmt.Fprintf(os.Stderr, "verify: %s holds all %d acknowledged appends: %v (%d events of type %s, head #%d)\n",
			t, len(acked), missing == 0, len(res.Events), eventType, res.LastReturnedSequenceNumber)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	fmt.Fprintf(os.Stderr, "verify: OK, %d acknowledged appends on every node, identical logs\n", len(acked))
	return nil
}

func readAcked(path string) (map[uint64]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	acked := map[uint64]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		seq, payload, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		if prev, dup := acked[n]; dup && prev != payload {
			return nil, fmt.Errorf("sequence number %d acknowledged twice, for %s and %s", n, prev, payload)
		}
		acked[n] = payload
	}
	return acked, sc.Err()
}

func sameEvents(a, b []contract.EventRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].SequenceNumber != b[i].SequenceNumber || a[i].Type != b[i].Type || !sameJSON(string(a[i].Payload), string(b[i].Payload)) {
			return false
		}
	}
	return true
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// cluster prints the leader to stdout.
func cluster(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	targets := fs.String("targets", "", "comma-separated gRPC targets (each asked alone)")
	suffix := fs.String("raft-suffix", "", "every member's Raft address must be its id followed by this")
	voters := fs.Int("voters", 3, "healthy voters every target must report")
	_ = fs.Parse(args)
	if *targets == "" {
		return errors.New("cluster needs --targets")
	}
	leader := ""
	for _, t := range strings.Split(*targets, ",") {
		store, err := client.Dial(ctx, []string{t}, append(security(), client.WithRetryTimeout(5*time.Second))...)
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := store.AdminAt(0).Status(sctx, &factstrv1.StatusRequest{})
		cancel()
		_ = store.Close()
		if err != nil {
			return fmt.Errorf("%s: status: %w", t, err)
		}
		if st.GetLeaderId() == "" || (leader != "" && st.GetLeaderId() != leader) {
			return fmt.Errorf("%s: leader %q (others: %q)", t, st.GetLeaderId(), leader)
		}
		leader = st.GetLeaderId()
		healthy := 0
		for _, m := range st.GetMembers() {
			if *suffix != "" && m.GetRaftAddr() != m.GetId()+*suffix {
				return fmt.Errorf("%s: member %s has Raft address %q, want %q", t, m.GetId(), m.GetRaftAddr(), m.GetId()+*suffix)
			}
			if m.GetSuffrage() == "voter" && m.GetHealthy() {
				healthy++
			}
		}
		if healthy != *voters || len(st.GetMembers()) != *voters {
			return fmt.Errorf("%s: %d healthy voters of %d members, want %d", t, healthy, len(st.GetMembers()), *voters)
		}
	}
	fmt.Fprintln(stdout, leader)
	return nil
}

// security returns the TLS and token options from FACTSTR_TLS_CA and
// FACTSTR_TOKEN; it exits on an unreadable CA file.
func security() []client.Option {
	opts, err := securityOptions(os.Getenv("FACTSTR_TLS_CA"), os.Getenv("FACTSTR_TOKEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2eclient:", err)
		os.Exit(1)
	}
	return opts
}

// securityOptions returns the client options for a CA certificate file
// and a token ("": none).
func securityOptions(caFile, token string) ([]client.Option, error) {
	var opts []client.Option
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("FACTSTR_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("FACTSTR_TLS_CA holds no PEM certificate")
		}
		opts = append(opts, client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	return opts, nil
}
