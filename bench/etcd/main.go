// Command factstr-etcd-bench runs one etcd member (go.etcd.io/etcd/server/v3/embed)
// and loads an etcd cluster with the workloads bench/compare compares
// FACTSTR against. It lives in its own module so etcd's dependencies stay
// out of FACTSTR's.
//
//	factstr-etcd-bench serve --name e1 --data-dir D --client-port 2379 --peer-port 2380 \
//	    --initial-cluster e1=http://127.0.0.1:2380,e2=...
//	factstr-etcd-bench load --endpoints 127.0.0.1:2379,... --workload put|txn|get [--on leader|follower] --json
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/factstr/factstr-go/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: factstr-etcd-bench serve|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "load":
		err = loadCmd(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want serve or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "factstr-etcd-bench: %v\n", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	name := fs.String("name", "e1", "member name")
	dir := fs.String("data-dir", "", "data directory")
	clientPort := fs.Int("client-port", 2379, "client port on 127.0.0.1")
	peerPort := fs.Int("peer-port", 2380, "peer port on 127.0.0.1")
	initial := fs.String("initial-cluster", "", "name=http://127.0.0.1:port,... (default: this member alone)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--data-dir is required")
	}
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *clientPort))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *peerPort))
	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = *initial
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = fmt.Sprintf("%s=%s", *name, pu)
	}
	cfg.InitialClusterToken = "factstr-bench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "error"
	// fsync stays on (etcd's default, UnsafeNoFsync false): every Raft
	// batch is in the WAL on disk before it is acknowledged.
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd member %s ready on %s\n", *name, cu)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		return errors.New("etcd member not ready within 60s")
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ctx.Done():
	case err := <-e.Err():
		return err
	}
	return nil
}

func loadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "client endpoints, comma-separated")
	workload := fs.String("workload", "put", "put, txn or get")
	concurrency := fs.Int("concurrency", 64, "workers, each with one request in flight")
	connections := fs.Int("connections", 4, "client instances the workers share")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	warmup := fs.Duration("warmup", time.Second, "how long to run before measuring")
	payloadBytes := fs.Int("payload-bytes", 200, "value size (a JSON object)")
	contexts := fs.Int("contexts", 1000, "txn: context keys; get: preloaded keys")
	on := fs.String("on", "any", "any, leader or follower")
	serializable := fs.Bool("serializable", false, "get: serializable (local) instead of linearizable reads")
	jsonOut := fs.Bool("json", false, "print JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	eps := strings.Split(*endpoints, ",")
	targets, err := resolve(ctx, eps, *on)
	if err != nil {
		return err
	}
	conns := make([]*clientv3.Client, *connections)
	for i := range conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: targets, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	var progress io.Writer = os.Stderr
	if *quiet {
		progress = nil
	} else {
		fmt.Fprintf(os.Stderr, "etcd %s against %s: %d workers over %d connections\n", *workload, strings.Join(targets, ","), *concurrency, *connections)
	}
	run := runID()
	opts := load.Options{
		Name: *workload, Concurrency: *concurrency, Duration: *duration, Warmup: *warmup, Progress: progress,
		Classify: classify, NotFailures: []string{"conflict"},
	}
	cli := func(w int) *clientv3.Client { return conns[w%len(conns)] }
	var op load.Op
	switch *workload {
	case "put":
		var seq atomic.Uint64
		op = func(ctx context.Context, w int) (int, error) {
			key := fmt.Sprintf("/bench/%s/%d/%d", run, w, seq.Add(1))
			_, err := cli(w).Put(ctx, key, string(load.Payload(*payloadBytes, map[string]any{"w": w})))
			return 1, err
		}
	case "txn":
		// Compare the context key's mod revision with the one last seen,
		// then put the event and the context key; on failure read the
		// context key's revision (what a FACTSTR conflict reports).
		revs := make([]atomic.Int64, *contexts)
		var seq atomic.Uint64
		op = func(ctx context.Context, w int) (int, error) {
			i := mrand.IntN(*contexts)
			ck := fmt.Sprintf("/ctx/%s/c%d", run, i)
			ek := fmt.Sprintf("/ev/%s/%d/%d", run, w, seq.Add(1))
			val := string(load.Payload(*payloadBytes, map[string]any{"ctx": ck, "w": w}))
			resp, err := cli(w).Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(ck), "=", revs[i].Load())).
				Then(clientv3.OpPut(ek, val), clientv3.OpPut(ck, ek)).
				Else(clientv3.OpGet(ck)).
				Commit()
			if err != nil {
				return 0, err
			}
			if !resp.Succeeded {
				var cur int64
				if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
					cur = rr.Kvs[0].ModRevision
				}
				revs[i].Store(cur)
				return 0, errConflict
			}
			revs[i].Store(resp.Header.Revision)
			return 1, nil
		}
	case "get":
		for i := 0; i < *contexts; i++ {
			if _, err := conns[0].Put(ctx, fmt.Sprintf("/read/%s/r%d", run, i), string(load.Payload(*payloadBytes, map[string]any{"ctx": i}))); err != nil {
				return fmt.Errorf("preload: %w", err)
			}
		}
		var gopts []clientv3.OpOption
		if *serializable {
			gopts = append(gopts, clientv3.WithSerializable())
		}
		op = func(ctx context.Context, w int) (int, error) {
			resp, err := cli(w).Get(ctx, fmt.Sprintf("/read/%s/r%d", run, mrand.IntN(*contexts)), gopts...)
			if err != nil {
				return 0, err
			}
			if len(resp.Kvs) != 1 {
				return 0, fmt.Errorf("get returned %d keys, want 1", len(resp.Kvs))
			}
			return 1, nil
		}
	default:
		return fmt.Errorf("--workload %q: want put, txn or get", *workload)
	}
	res := load.Run(ctx, opts, op)
	res.Name = "etcd " + *workload
	if *jsonOut {
		return load.PrintJSON(os.Stdout, res)
	}
	load.Print(os.Stdout, res)
	return nil
}

var errConflict = errors.New("conflict")

func classify(err error) string {
	if errors.Is(err, errConflict) {
		return "conflict"
	}
	return load.DefaultClassify(err)
}

// resolve picks the endpoints that are the leader or followers.
func resolve(ctx context.Context, eps []string, on string) ([]string, error) {
	if on == "any" {
		return eps, nil
	}
	if on != "leader" && on != "follower" {
		return nil, fmt.Errorf("--on %q: want any, leader or follower", on)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []string
		for _, ep := range eps {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := c.Status(sctx, ep)
			cancel()
			if err != nil || st.Leader == 0 {
				continue
			}
			if (on == "leader") == (st.Leader == st.Header.MemberId) {
				out = append(out, ep)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("--on %s: no such member among %s", on, strings.Join(eps, ","))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
