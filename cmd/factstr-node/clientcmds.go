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
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.addr, "addr", "node gRPC addresses host:port, comma-separated (default 127.0.0.1:7400)")
	fs.BoolVar(&c.json, "json", false, "print JSON for machines")
	fs.StringVar(&c.token, "token", "", "bearer token, if the nodes require one")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM CA that signed the nodes' certificates (enables TLS)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM client certificate (mutual TLS)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM key for --tls-cert")
	fs.StringVar(&c.serverName, "tls-server-name", "", "name to verify in the node's certificate (default: the host in --addr)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on the whole command (not for tail)")
}

func (c *clientFlags) dial(ctx context.Context) (*client.Client, error) {
	addrs := []string(c.addr)
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:7400"}
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
	return client.Dial(ctx, addrs, opts...)
}

// queryFlags build one EventFilter from the command line.
type queryFlags struct {
	types  []string
	preds  rawList
	after  uint64
	local  bool
	minSeq uint64
}

func (q *queryFlags) register(fs *flag.FlagSet, what string) {
	fs.Func("type", what+" event type (repeatable or comma-separated); none: any type", func(v string) error {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				q.types = append(q.types, t)
			}
		}
		return nil
	})
	fs.Var(&q.preds, "where", "JSON payload subset predicate (repeatable: any may match)")
	fs.BoolVar(&q.local, "local", false, "read the node's local state (possibly stale) instead of a linearizable read")
	fs.Uint64Var(&q.minSeq, "min-seq", 0, "with --local: wait until the node applied this sequence number")
}

func (q *queryFlags) query() contract.EventQuery {
	if len(q.types) == 0 && len(q.preds) == 0 {
		return contract.EventQuery{MinSequenceNumber: q.after}
	}
	f := contract.EventFilter{}
	if len(q.types) > 0 {
		f.EventTypes = q.types
	}
	for _, p := range q.preds {
		f.PayloadPredicates = append(f.PayloadPredicates, json.RawMessage(p))
	}
	return contract.EventQuery{Filters: []contract.EventFilter{f}, MinSequenceNumber: q.after}
}

func (q *queryFlags) readCtx(ctx context.Context) context.Context {
	if q.local {
		return contract.WithReadOptions(ctx, contract.ReadOptions{Consistency: contract.Local, MinSequenceNumber: q.minSeq})
	}
	return ctx
}

func cmdAppend(ctx context.Context, args []string) error {
	var cf clientFlags
	var types, payloads rawList
	var ifVersion int64
	var key string
	var q queryFlags
	fs := newFlagSet("append", "append --type T --payload JSON [--type T --payload JSON ...] [--if-version N --context-type T --context-where JSON]")
	cf.register(fs)
	fs.Var(&types, "type", "event type (repeat with --payload for a batch)")
	fs.Var(&payloads, "payload", "event payload as JSON (one per --type)")
	fs.Int64Var(&ifVersion, "if-version", -1, "AppendIf: commit only if the context's version is N (0: no matching fact yet)")
	fs.Func("context-type", "AppendIf context: event type (repeatable)", func(v string) error { q.types = append(q.types, v); return nil })
	fs.Var(&q.preds, "context-where", "AppendIf context: JSON payload predicate (repeatable)")
	fs.StringVar(&key, "idempotency-key", "", "retry-safe key: a retry with the same key appends once")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(types) != len(payloads) {
		return fmt.Errorf("give one --payload per --type (got %d types, %d payloads)", len(types), len(payloads))
	}
	events := make([]contract.NewEvent, len(types))
	for i := range types {
		events[i] = contract.NewEvent{Type: types[i], Payload: json.RawMessage(payloads[i])}
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if key != "" {
		ctx = contract.WithIdempotencyKey(ctx, key)
	}
	var res contract.AppendResult
	if ifVersion >= 0 {
		res, err = c.AppendIf(ctx, events, q.query(), uint64(ifVersion))
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

func cmdQuery(ctx context.Context, args []string) error {
	var cf clientFlags
	var q queryFlags
	fs := newFlagSet("query", "query [--type T] [--where JSON] [--after N] [--local]")
	cf.register(fs)
	q.register(fs, "match")
	fs.Uint64Var(&q.after, "after", 0, "only events after this sequence number (the context version still covers all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Query(q.readCtx(ctx), q.query())
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

func cmdTail(ctx context.Context, args []string) error {
	var cf clientFlags
	var q queryFlags
	var durable string
	fs := newFlagSet("tail", "tail [--type T] [--where JSON] [--from N] [--durable NAME]")
	cf.register(fs)
	q.register(fs, "match")
	fs.Uint64Var(&q.after, "from", 0, "catch up from after this sequence number, then follow live")
	fs.StringVar(&durable, "durable", "", "a durable stream name: replay from its stored cursor, then follow")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.dial(ctx)
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
	if durable != "" {
		sub, err = c.StreamToDurable(q.readCtx(ctx), durable, q.query(), handler)
	} else {
		sub, err = c.StreamTo(q.readCtx(ctx), q.query(), handler)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "following; Ctrl-C to stop")
	<-ctx.Done()
	sub.Unsubscribe()
	return nil
}
