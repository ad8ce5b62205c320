package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

// clientFlags are shared by every client subcommand.
type clientFlags struct {
	addr       listFlag
	json       bool
	token      string
	tlsCA      string
	tlsCert    string
	tlsKey     string
	serverName string
	timeout    time.Duration
	anyNode    bool // writes round the nodes instead of to the leader (bench)
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.addr, "addr", "node gRPC addresses host:port, comma-separated; the command fails over among them (default 127.0.0.1:7400)")
	fs.BoolVar(&c.json, "json", false, "print JSON for machines")
	fs.StringVar(&c.token, "token", "", "bearer token, if the nodes require one")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM CA that signed the nodes' certificates (enables TLS)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM client certificate (mutual TLS)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM key for --tls-cert")
	fs.StringVar(&c.serverName, "tls-server-name", "", "name to verify in the node's certificate (default: the host in --addr)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on the whole command (not for tail)")
}

// addrs returns --addr (default 127.0.0.1:7400), each checked to be
// host:port: gRPC would dial port 443 for a bare host.
func (c *clientFlags) addrs() ([]string, error) {
	addrs := []string(c.addr)
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:7400"}
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, usagef("--addr %q is not host:port (a node serves gRPC on 127.0.0.1:7400 by default)", a)
		}
	}
	return addrs, nil
}

// startGrace is how long dial keeps asking when no node answers: a node
// started a moment ago (`factstr-node serve &` and the next command at
// once) may not listen yet. gRPC reconnects after about a second, so this
// gives such a node two chances.
const startGrace = 2500 * time.Millisecond

// dial connects to --addr and checks that at least one node answers, so
// that a command against stopped nodes fails within seconds with a hint
// instead of retrying until --timeout.
func (c *clientFlags) dial(ctx context.Context) (*client.Client, error) {
	cl, err := c.dialLazy()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, min(c.timeout, max(startGrace, client.DefaultAttemptTimeout)))
	defer cancel()
	giveUp := time.Now().Add(min(c.timeout, startGrace))
	for {
		err = cl.Ping(pctx)
		if err == nil || !errors.Is(err, client.ErrNoNodeAnswers) || time.Now().After(giveUp) {
			break
		}
		select {
		case <-pctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		cl.Close()
		var ue *client.UnreachableError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%w: %s", err, unreachableHint(ue))
		}
		return nil, err
	}
	return cl, nil
}

// unreachableHint says what to check: whether the nodes run, when nothing
// listens at any address, else their TLS (a connection that was accepted
// and then dropped or refused in the handshake: a TLS node asked in
// plaintext, or without the client certificate it requires).
func unreachableHint(ue *client.UnreachableError) string {
	for _, r := range ue.Reasons {
		absent := false
		for _, s := range []string{"connection refused", "no answer within", "no such host", "network is unreachable", "i/o timeout", "no route to host"} {
			absent = absent || strings.Contains(r, s)
		}
		if !absent {
			return "the node's TLS does not match: check --tls-ca, --tls-cert, --tls-key (FACTSTR_TLS_*)"
		}
	}
	return "is `factstr-node serve` running? check --addr / FACTSTR_ADDR"
}

// dialLazy connects without checking that a node answers.
func (c *clientFlags) dialLazy() (*client.Client, error) {
	addrs, err := c.addrs()
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	if c.tlsCA != "" || c.tlsCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.serverName}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("read --tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", c.tlsCA)
			}
			cfg.RootCAs = pool
		}
		if c.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
			if err != nil {
				return nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, client.WithTLS(cfg))
	} else if pool := clusterCAFromEnv(); pool != nil {
		opts = append(opts, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: c.serverName}))
	}
	opts = append(opts, client.WithRetryTimeout(c.timeout))
	if c.anyNode {
		opts = append(opts, client.WithWritesToAnyNode())
	}
	return client.Dial(context.Background(), addrs, opts...)
}

// queryFlags build the filters of a query from the command line: either
// one filter from --type and --where, or any number of --filter.
type queryFlags struct {
	prefix  string // "context-" for append's context flags
	types   []string
	preds   objectList
	filters filterList
	after   uint64
	local   bool
	minSeq  uint64
}

const filterHelp = `JSON filter {"types":[...],"where":{...}} (repeatable: an event matches when any filter matches; "where" may also be a list of predicates, any of which may match; an empty list matches nothing, a missing key anything)`

func (q *queryFlags) register(fs *flag.FlagSet, what string) {
	q.registerFilters(fs, what)
	fs.BoolVar(&q.local, "local", false, "read the node's local state (possibly stale) instead of a linearizable read")
	fs.Uint64Var(&q.minSeq, "min-seq", 0, "with --local: wait until the node applied this sequence number")
}

func (q *queryFlags) registerFilters(fs *flag.FlagSet, what string) {
	fs.Func(q.prefix+"type", what+"event type (repeatable or comma-separated); none: any type", func(v string) error {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				q.types = append(q.types, t)
			}
		}
		return nil
	})
	fs.Var(&q.preds, q.prefix+"where", what+"JSON payload subset predicate, an object (repeatable: any may match)")
	fs.Var(&q.filters, q.prefix+"filter", what+filterHelp)
}

// given reports whether any filter flag was given.
func (q *queryFlags) given() bool {
	return len(q.types) > 0 || len(q.preds) > 0 || len(q.filters) > 0
}

func (q *queryFlags) query() (contract.EventQuery, error) {
	simple := len(q.types) > 0 || len(q.preds) > 0
	switch {
	case len(q.filters) > 0 && simple:
		return contract.EventQuery{}, usagef("give either --%sfilter or --%stype/--%swhere, not both (add the --%stype/--%swhere filter as one more --%sfilter)",
			q.prefix, q.prefix, q.prefix, q.prefix, q.prefix, q.prefix)
	case len(q.filters) > 0:
		return contract.EventQuery{Filters: append([]contract.EventFilter(nil), q.filters...), MinSequenceNumber: q.after}, nil
	case !simple:
		return contract.EventQuery{MinSequenceNumber: q.after}, nil
	}
	f := contract.EventFilter{}
	if len(q.types) > 0 {
		f.EventTypes = q.types
	}
	if len(q.preds) > 0 {
		f.PayloadPredicates = q.preds
	}
	return contract.EventQuery{Filters: []contract.EventFilter{f}, MinSequenceNumber: q.after}, nil
}

// filterList is a repeatable --filter: one contract.EventFilter each.
type filterList []contract.EventFilter

func (l *filterList) String() string { return "" }

func (l *filterList) Set(v string) error {
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var raw struct {
		Types *[]string       `json:"types"`
		Where json.RawMessage `json:"where"`
	}
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf(`want {"types":[...],"where":{...}} (both keys optional): %v`, err)
	}
	if dec.More() {
		return errors.New("one JSON object per --filter")
	}
	var f contract.EventFilter
	if raw.Types != nil {
		f.EventTypes = append([]string{}, *raw.Types...) // present but empty: no type matches
		for _, t := range f.EventTypes {
			if t == "" {
				return errors.New(`"types" holds an empty type name`)
			}
		}
	}
	where := strings.TrimSpace(string(raw.Where))
	switch {
	case where == "" || where == "null":
	case where[0] == '[':
		var preds []json.RawMessage
		if err := json.Unmarshal(raw.Where, &preds); err != nil {
			return fmt.Errorf(`"where": %v`, err)
		}
		f.PayloadPredicates = []json.RawMessage{} // present but empty: no payload matches
		for _, p := range preds {
			if err := checkObject(string(p)); err != nil {
				return fmt.Errorf(`"where" list element %s: %v`, p, err)
			}
			f.PayloadPredicates = append(f.PayloadPredicates, p)
		}
	default:
		if err := checkObject(where); err != nil {
			return fmt.Errorf(`"where": %v`, err)
		}
		f.PayloadPredicates = []json.RawMessage{raw.Where}
	}
	*l = append(*l, f)
	return nil
}

func (q *queryFlags) readCtx(ctx context.Context) context.Context {
	if q.local {
		return contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: q.minSeq})
	}
	return ctx
}

type appendFlags struct {
	cf              clientFlags
	types, payloads rawList
	ifVersion       versionFlag
	key             string
	ctx             queryFlags
}

func appendFlagSet(a *appendFlags) *flag.FlagSet {
	a.ctx.prefix = "context-"
	fs := newFlagSet("append", "append --type T --payload JSON [--type T --payload JSON ...] [--if-version N --context-type T --context-where JSON | --context-filter JSON ...]",
		"Append events as one batch: all commit, as one consecutive range, or none. With --if-version N the\n"+
			"batch commits only if the context (--context-type/--context-where, or --context-filter) is still at\n"+
			"version N, its highest matching sequence number.")
	a.cf.register(fs)
	fs.Var(&a.types, "type", "event type (repeat with --payload for a batch)")
	fs.Var(&a.payloads, "payload", "event payload as JSON (one per --type)")
	fs.Var(&a.ifVersion, "if-version", "AppendIf: commit only if the context's version is N (0: no matching fact yet)")
	a.ctx.registerFilters(fs, "AppendIf context: ")
	fs.StringVar(&a.key, "idempotency-key", "", "retry-safe key: a retry with the same key appends once")
	return fs
}

func cmdAppend(ctx context.Context, args []string) error {
	var a appendFlags
	fs := appendFlagSet(&a)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: events are given with --type and --payload", fs.Arg(0))
	}
	if len(a.types) == 0 {
		return usagef("nothing to append: give --type T --payload JSON (repeat both for a batch)")
	}
	if len(a.types) != len(a.payloads) {
		return usagef("give one --payload per --type (got %d types, %d payloads)", len(a.types), len(a.payloads))
	}
	if a.ctx.given() && !a.ifVersion.set {
		// Without --if-version the append would be unconditional: the
		// context the user wrote would be silently ignored.
		return usagef("--context-type/--context-where/--context-filter need --if-version N (the version the context must still have); without it the append would be unconditional")
	}
	cq, err := a.ctx.query()
	if err != nil {
		return err
	}
	events := make([]contract.NewEvent, len(a.types))
	for i := range a.types {
		events[i] = contract.NewEvent{Type: a.types[i], Payload: json.RawMessage(a.payloads[i])}
	}
	cf := &a.cf
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if a.key != "" {
		ctx = contract.WithIdempotencyKey(ctx, a.key)
	}
	var res contract.AppendResult
	if a.ifVersion.set {
		res, err = c.AppendIf(ctx, events, cq, a.ifVersion.v)
	} else {
		res, err = c.Append(ctx, events)
	}
	var conflict *contract.ConflictError
	if errors.As(err, &conflict) {
		if cf.json {
			_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"conflict": true, "expected": conflict.Expected, "actual": conflict.Actual})
		}
		return fmt.Errorf("conflict: the context is at version %d, not %d; nothing was appended", conflict.Actual, conflict.Expected)
	}
	if err != nil {
		return err
	}
	if cf.json {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"first_sequence_number": res.FirstSequenceNumber, "last_sequence_number": res.LastSequenceNumber, "committed_count": res.CommittedCount,
		})
	}
	fmt.Printf("appended %d event(s): sequence %d..%d\n", res.CommittedCount, res.FirstSequenceNumber, res.LastSequenceNumber)
	return nil
}

type recordJSON struct {
	Seq        uint64          `json:"sequence_number"`
	OccurredAt time.Time       `json:"occurred_at"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
}

func toJSON(r contract.EventRecord) recordJSON {
	return recordJSON{Seq: r.SequenceNumber, OccurredAt: r.OccurredAt, Type: r.Type, Payload: r.Payload}
}

func printRecord(w io.Writer, r contract.EventRecord) {
	fmt.Fprintf(w, "%6d  %s  %-20s %s\n", r.SequenceNumber, r.OccurredAt.Format(time.RFC3339Nano), r.Type, string(r.Payload))
}

type readFlags struct {
	cf      clientFlags
	q       queryFlags
	durable string
	start   string // tail --durable: where a new name starts
	wait    bool   // tail --durable: wait while the name is held
	groupBy string // tail --durable: join the name's consumer group, partitioned by this key
	parts   int    // tail --durable --group-key: the group's partition count
}

func queryFlagSet(r *readFlags) *flag.FlagSet {
	fs := newFlagSet("query", "query [--type T] [--where JSON] [--filter JSON ...] [--after N] [--local]",
		"Print the events that match (every event without a filter) and the context version, the highest\n"+
			"matching sequence number.")
	r.cf.register(fs)
	r.q.register(fs, "")
	fs.Uint64Var(&r.q.after, "after", 0, "only events after this sequence number (the context version still covers all)")
	return fs
}

func cmdQuery(ctx context.Context, args []string) error {
	var r readFlags
	fs := queryFlagSet(&r)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: filters are given with --type, --where or --filter", fs.Arg(0))
	}
	q, err := r.q.query()
	if err != nil {
		return err
	}
	cf := &r.cf
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Query(r.q.readCtx(ctx), q)
	if err != nil {
		return err
	}
	if cf.json {
		evs := make([]recordJSON, len(res.Events))
		for i, e := range res.Events {
			evs[i] = toJSON(e)
		}
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"events": evs, "last_returned_sequence_number": res.LastReturnedSequenceNumber, "current_context_version": res.CurrentContextVersion,
		})
	}
	for _, e := range res.Events {
		printRecord(os.Stdout, e)
	}
	fmt.Printf("%d event(s); context version %d\n", len(res.Events), res.CurrentContextVersion)
	return nil
}

func tailFlagSet(r *readFlags) *flag.FlagSet {
	fs := newFlagSet("tail", "tail [--type T] [--where JSON] [--filter JSON ...] [--from N] [--durable NAME [--start end|N] [--group-key KEY [--partitions N]]]",
		"Print a stream as JSON lines until Ctrl-C or until the stream ends: live (what commits from now on),\n"+
			"catch-up (--from N: everything after N, then live) or durable (--durable NAME: replay from the\n"+
			"name's server-stored cursor, then live; a name keeps the query it was created with).")
	r.cf.register(fs)
	r.q.register(fs, "")
	fs.Uint64Var(&r.q.after, "from", 0, "catch up from after this sequence number, then follow live")
	fs.StringVar(&r.durable, "durable", "", "a durable stream name: replay from its stored cursor, then follow")
	fs.StringVar(&r.start, "start", "", "with --durable, where a NEW name starts: beginning (default), end, or a sequence number N\n(events after N); an existing name resumes from its cursor")
	fs.BoolVar(&r.wait, "wait", false, "with --durable, wait while another subscriber holds the name instead of failing")
	fs.StringVar(&r.groupBy, "group-key", "", "with --durable, join the name's consumer group: events are partitioned by this payload\nfield (dotted for a nested one) or $type; each member gets a share of the partitions")
	fs.IntVar(&r.parts, "partitions", contract.DefaultGroupPartitions, "with --group-key, the partition count of a NEW group (1 to 256)")
	return fs
}

func cmdTail(ctx context.Context, args []string) error {
	var r readFlags
	fs := tailFlagSet(&r)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: filters are given with --type, --where or --filter, a durable name with --durable", fs.Arg(0))
	}
	q, err := r.q.query()
	if err != nil {
		return err
	}
	if r.wait && r.durable == "" {
		return usagef("--wait is for a durable stream: give --durable NAME")
	}
	var opts []contract.DurableOption
	if r.start != "" {
		if r.durable == "" {
			return usagef("--start is for a durable stream: give --durable NAME (a live stream starts now, --from N catches up)")
		}
		start, err := parseTo(r.start)
		if err != nil {
			return usagef("--start %q is not a sequence number, end or beginning", r.start)
		}
		opts = append(opts, contract.StartAt(start))
	}
	if r.groupBy != "" {
		if r.durable == "" {
			return usagef("--group-key is for a durable stream: give --durable NAME")
		}
		key, err := contract.ParseGroupKey(r.groupBy)
		if err != nil {
			return usagef("--group-key %q: %v", r.groupBy, err)
		}
		opts = append(opts, contract.Group(key, r.parts))
	}
	c, err := r.cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	enc := json.NewEncoder(os.Stdout)
	handler := func(_ context.Context, batch []contract.EventRecord) error {
		for _, e := range batch {
			if err := enc.Encode(toJSON(e)); err != nil {
				return err
			}
		}
		return nil
	}
	var sub contract.Subscription
	if r.durable != "" {
		sub, err = subscribeDurable(r.q.readCtx(ctx), c, r.durable, q, handler, opts, r.wait, os.Stderr)
	} else {
		sub, err = c.StreamTo(r.q.readCtx(ctx), q, handler)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "following; Ctrl-C to stop")
	select {
	case <-ctx.Done():
		sub.Unsubscribe()
		return nil
	case <-sub.Done():
		if err := sub.Err(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("the stream ended: %w", err)
		}
		return nil
	}
}

// subscribeDurable subscribes to the durable stream name. With wait, a name
// another subscriber holds is tried again, with a growing pause, until it
// is free or ctx ends: the servers have no call that waits for a name, and
// a holder that dies without releasing is freed by the cluster after its
// node is declared gone.
func subscribeDurable(ctx context.Context, c contract.EventStore, name string, q contract.EventQuery, h contract.StreamHandler,
	opts []contract.DurableOption, wait bool, status io.Writer) (contract.Subscription, error) {
	pause := 200 * time.Millisecond
	said := false
	for {
		sub, err := c.StreamToDurable(ctx, name, q, h, opts...)
		if err == nil || !wait || !errors.Is(err, contract.ErrDurableNameInUse) {
			return sub, err
		}
		if !said {
			fmt.Fprintf(status, "%s is held by another subscriber; waiting for it to be free (Ctrl-C to stop)\n", name)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for durable stream %q: %w", name, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}
