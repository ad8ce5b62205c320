package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/adminsvc"
	"github.com/factstr/factstr-go/internal/certreload"
	"github.com/factstr/factstr-go/internal/console"
	"github.com/factstr/factstr-go/internal/diskguard"
	"github.com/factstr/factstr-go/internal/metrics"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/internal/streams"
	"github.com/factstr/factstr-go/raftlog"
)

type serveFlags struct {
	nodeID, dataDir                string
	grpcAddr, raftAddr, gossipAddr string
	httpAddr                       string
	advertise                      string
	raftAdvertise                  string
	debugClockOffsetFile           string
	bootstrapExpect                int
	join                           listFlag
	tlsCert, tlsKey, tlsCA         string
	raftTLS                        bool
	token                          string
	authFile                       string
	gossipKey                      string
	clusterKey                     string
	tlsSANs                        listFlag
	insecure                       bool
	maxPayload, maxBatch, maxBytes int
	maxDepth, maxLeaves, maxDigits int
	maxQueryBytes                  int
	logLevel, logFormat            string
	leaveOnTerminate               bool
	unsafeLocalReads               bool
	snapshotThreshold              uint64
	heartbeat, election            time.Duration
	shutdownTimeout                time.Duration
	deadServerCleanup              time.Duration
	metricsAddr                    string
	pprof                          bool
	blockProfileRate               int
	mutexProfileFraction           int
	gcPercent                      int
	maxInflight                    int
	maxInflightForwards            int
	raftLogStore                   string
	minFreeDisk                    uint64
	maxStreamsPerConn              uint
	maxSubsPerConn                 int
	streamSubscriberBytes          int64
	streamNodeBytes                int64
	streamStallTimeout             time.Duration
	maxRestoreBytes                int64
}

func serveFlagSet(f *serveFlags) *flag.FlagSet {
	fs := newFlagSet("serve", "serve [flags]")
	fs.StringVar(&f.nodeID, "node-id", "node1", "this node's stable, unique id (in Kubernetes: the pod name)")
	fs.StringVar(&f.dataDir, "data-dir", "./factstr-data", "directory for the Raft log, snapshots and the event store")
	fs.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:7400", "host:port for the gRPC API (clients and peers)")
	fs.StringVar(&f.httpAddr, "http-addr", defaultHTTPAddr, "host:port for the HTTP/JSON API (empty: off); by default, when the port is taken, the node runs without it and says so")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7401", "host:port for Raft traffic")
	fs.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:7402", "host:port for gossip (TCP and UDP)")
	fs.StringVar(&f.advertise, "advertise-addr", "", "host (name or IP) other nodes reach this one on; the ports are the bind ports (default: the bind hosts)")
	fs.StringVar(&f.raftAdvertise, "raft-advertise-addr", "", "host:port other nodes dial for Raft, when it differs from the --advertise-addr host with the --raft-addr port (e.g. a proxy in front of the Raft port)")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 1, "bootstrap a new cluster once this many nodes see each other (0: never, wait to be added; default 1 alone, 0 with --join)")
	fs.Var(&f.join, "join", "gossip addresses (host:port, DNS names allowed) of other nodes, comma-separated or repeated")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate for the gRPC server and for dialing peers")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle: clients and peers must present a certificate it signed (mutual TLS)")
	fs.BoolVar(&f.raftTLS, "raft-tls", false, "mutual TLS for Raft traffic with --tls-cert, --tls-key and --tls-ca (peers are verified by CA, not host name); every node of a cluster must agree")
	fs.StringVar(&f.clusterKey, "cluster-key", "", "base64 32-byte secret shared by the nodes (factstr-node keygen prints one): Raft, gossip and the peer service are authenticated with it (mutual TLS from a CA derived from it); never give it to clients")
	fs.Var(&f.tlsSANs, "tls-san", "extra host names or IPs for the certificate this node issues itself from --cluster-key (clients verify the name they dial), comma-separated or repeated")
	fs.StringVar(&f.token, "token", "", "an admin bearer token; with it (or --auth-file) every client call but health checks needs a token")
	fs.StringVar(&f.authFile, "auth-file", "", "JSON array of {\"name\", \"token\", \"role\"} client tokens, role reader, writer or admin; read at start")
	fs.StringVar(&f.gossipKey, "gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts and authenticates gossip; the same on every node (derived from --cluster-key when that is given)")
	fs.BoolVar(&f.insecure, "insecure", false, "allow non-loopback addresses without cluster authentication or client tokens (anyone who reaches the ports controls the cluster)")
	fs.IntVar(&f.maxPayload, "max-payload-bytes", contract.DefaultLimits.MaxPayloadBytes, "largest event payload accepted")
	fs.IntVar(&f.maxBatch, "max-batch-events", contract.DefaultLimits.MaxBatchEvents, "most events accepted in one append")
	fs.IntVar(&f.maxBytes, "max-batch-bytes", contract.DefaultLimits.MaxBatchBytes, "most bytes (types and payloads) accepted in one append")
	fs.IntVar(&f.maxDepth, "max-payload-depth", contract.DefaultLimits.MaxPayloadDepth, "deepest nesting of objects and arrays accepted in a payload or predicate")
	fs.IntVar(&f.maxLeaves, "max-payload-leaves", contract.DefaultLimits.MaxPayloadLeaves, "most scalar values accepted in one payload or predicate (each is an index entry)")
	fs.IntVar(&f.maxDigits, "max-number-digits", contract.DefaultLimits.MaxNumberDigits, "most digits accepted in one JSON number (larger numbers: send them as strings)")
	fs.IntVar(&f.maxQueryBytes, "max-query-bytes", contract.DefaultLimits.MaxQueryBytes, fmt.Sprintf("most bytes in one query result (types and payloads, plus %d per event); past it ResourceExhausted with the first page, the caller queries on from its last sequence number (0: no bound)", contract.RecordOverheadBytes))
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.leaveOnTerminate, "leave-on-terminate", false, "on SIGTERM leave the cluster (remove this voter) instead of only handing leadership over")
	fs.BoolVar(&f.unsafeLocalReads, "unsafe-local-reads", false, "DEBUG ONLY: serve default reads from local state without the read index (stale reads)")
	fs.StringVar(&f.debugClockOffsetFile, "debug-clock-offset-file", "", "DEBUG ONLY: add the Go duration in this file (e.g. -90s, +10m; missing or empty: 0, re-read every 50ms) to the clock that stamps OccurredAt and prunes idempotency keys (fault testing)")
	fs.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 8192, "Raft entries between snapshots")
	fs.DurationVar(&f.heartbeat, "raft-heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	fs.DurationVar(&f.election, "raft-election-timeout", time.Second, "Raft election timeout")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "bound on a graceful shutdown")
	fs.DurationVar(&f.deadServerCleanup, "dead-server-cleanup", 0, "leader removes servers gossip reports failed for longer than this, never below a quorum of --bootstrap-expect (0: off)")
	fs.StringVar(&f.raftLogStore, "raft-log-store", raftlog.LogStoreBolt, "Raft log store for a new data directory: bolt (raft-boltdb, two fsyncs per append) or wal (hashicorp/raft-wal, one fsync per append, experimental upstream); an existing directory keeps its kind")
	fs.IntVar(&f.maxInflight, "max-inflight-proposals", 1, "Raft entries a leader has in flight (coalesced write batches); fewer: larger entries, one fsync each")
	fs.IntVar(&f.maxInflightForwards, "max-inflight-forwards", 4, "coalesced write batches a follower has forwarded to the leader and not yet had answered (the leader merges them into its entries)")
	fs.IntVar(&f.gcPercent, "gc-percent", 400, "Go GC target percentage (runtime/debug.SetGCPercent); ignored when GOGC is set. Higher: less CPU on garbage collection, more heap; set GOMEMLIMIT to cap memory")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "host:port for Prometheus metrics on /metrics (empty: off)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve /debug/pprof on --metrics-addr")
	fs.IntVar(&f.blockProfileRate, "pprof-block-rate", 0, "with --pprof: runtime.SetBlockProfileRate (ns; 0: no block profile)")
	fs.IntVar(&f.mutexProfileFraction, "pprof-mutex-fraction", 0, "with --pprof: runtime.SetMutexProfileFraction (0: no mutex profile)")
	fs.Uint64Var(&f.minFreeDisk, "min-free-disk", diskguard.DefaultMinFree, "refuse appends (ResourceExhausted) while the data directory's file system has fewer free bytes than this, so it never fills mid-apply; writes resume by themselves when space returns (0: off)")
	fs.UintVar(&f.maxStreamsPerConn, "max-streams-per-conn", server.DefaultMaxConcurrentStreams, "HTTP/2 streams (calls) one client connection may have open; more wait in the client")
	fs.IntVar(&f.maxSubsPerConn, "max-subscriptions-per-conn", server.DefaultMaxSubscriptionsPerConn, "Stream and StreamDurable calls one client connection may hold open; past it ResourceExhausted")
	fs.Int64Var(&f.streamSubscriberBytes, "stream-subscriber-buffer", streams.DefaultSubscriberBytes, "bytes of events one stream subscriber may hold read ahead of its client (a single larger batch is still sent, alone)")
	fs.Int64Var(&f.streamNodeBytes, "stream-node-buffer", server.DefaultStreamNodeBytes, "bytes of events all stream subscribers of this node may hold read ahead together; past it subscribers wait for their share (0: no bound)")
	fs.DurationVar(&f.streamStallTimeout, "stream-stall-timeout", server.DefaultStreamStallTimeout, "a live stream whose client takes no delivery for this long ends with ResourceExhausted (the client resumes after its last event); a durable one drops its read-ahead instead (0: never)")
	fs.Int64Var(&f.maxRestoreBytes, "max-restore-bytes", adminsvc.DefaultMaxRestoreBytes, "largest backup 'admin snapshot restore' accepts (it is spooled to the data disk first); past it ResourceExhausted")
	return fs
}

// limits are the defaults with the flags' values.
func (f *serveFlags) limits() contract.Limits {
	l := contract.DefaultLimits
	l.MaxPayloadBytes, l.MaxBatchEvents, l.MaxBatchBytes = f.maxPayload, f.maxBatch, f.maxBytes
	l.MaxPayloadDepth, l.MaxPayloadLeaves, l.MaxNumberDigits = f.maxDepth, f.maxLeaves, f.maxDigits
	l.MaxQueryBytes = f.maxQueryBytes
	return l
}

func serve(ctx context.Context, args []string) error {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := parse(fs, args); err != nil {
		return err
	}
	// One node alone bootstraps itself by default; a node told to join
	// others waits to be added, unless --bootstrap-expect says otherwise.
	if len(f.join) > 0 && !flagGiven(fs, "bootstrap-expect") {
		f.bootstrapExpect = 0
	}
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	if _, ok := os.LookupEnv("GOGC"); !ok && f.gcPercent != 0 {
		// The write path allocates per request in gRPC, raft and bbolt; at
		// Go's default of 100 the collector took about a fifth of a loaded
		// leader's CPU (docs/performance.md).
		debug.SetGCPercent(f.gcPercent)
	}

	raftAdvertise := advertised(f.advertise, f.raftAddr)
	if f.raftAdvertise != "" {
		if err := checkDialAddr(f.raftAdvertise); err != nil {
			return fmt.Errorf("--raft-advertise-addr: %w", err)
		}
		raftAdvertise = f.raftAdvertise
	}
	if f.raftTLS && (f.tlsCert == "" || f.tlsKey == "" || f.tlsCA == "") {
		return errors.New("--raft-tls needs --tls-cert, --tls-key and --tls-ca: nodes present their certificate on the Raft port and verify each other's against the CA")
	}
	tokens, err := clientTokens(f.token, f.authFile)
	if err != nil {
		return err
	}
	if err := checkExposure(&f, len(tokens) > 0); err != nil {
		return err
	}
	if f.insecure {
		logger.Warn("--insecure: this node may listen beyond loopback without cluster authentication or client tokens; whoever reaches its ports can read, write and reconfigure the cluster")
	}
	certs, err := loadTLS(ctx, f.tlsCert, f.tlsKey, f.tlsCA, logger)
	if err != nil {
		return err
	}
	if certs != nil {
		defer certs.Close()
	}
	ident, err := clusterIdentity(ctx, &f, logger)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", f.grpcAddr)
	if err != nil {
		return fmt.Errorf("listen on --grpc-addr %s: %w", f.grpcAddr, err)
	}
	defer lis.Close()

	rc := raftlog.DefaultConfig()
	rc.SnapshotThreshold = f.snapshotThreshold
	rc.LogStore = f.raftLogStore
	rc.TrailingLogs = f.snapshotThreshold + f.snapshotThreshold/4
	rc.HeartbeatTimeout, rc.ElectionTimeout = f.heartbeat, f.election
	// Larger appends mean fewer entries per AppendEntries, so that one
	// stays within cluster.MaxAppendEntriesBytes.
	rc.MaxAppendEntries = min(rc.MaxAppendEntries, cluster.MaxAppendEntriesFor(f.limits()))
	rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, f.heartbeat/2)
	switch {
	case ident != nil:
		rc.TLS = &tls.Config{GetCertificate: ident.GetCertificate, GetClientCertificate: ident.GetClientCertificate}
		rc.TLSRootCAs = ident.CA().Pool
	case f.raftTLS:
		rc.TLS = &tls.Config{GetCertificate: certs.GetCertificate, GetClientCertificate: certs.GetClientCertificate}
		rc.TLSRootCAs = certs.CAPool
	}
	authOpts, err := server.AuthInterceptors(server.AuthConfig{Tokens: tokens, PeerIdentity: peerIdentity(ident, certs, f.tlsCA != "")})
	if err != nil {
		return err
	}
	// Peers authenticate with certificates only, never with a client
	// token: the peer service refuses tokens (internal/server/access.go).
	peerCreds := insecure.NewCredentials()
	switch {
	case ident != nil:
		peerCreds = ident.PeerCredentials()
	case certs != nil:
		peerCreds = certs.GRPCClientCredentials()
	}
	peerDial := []grpc.DialOption{grpc.WithTransportCredentials(peerCreds)}
	var gossipKey []byte
	switch {
	case ident != nil:
		gossipKey = ident.gossipKey
	case f.gossipKey != "":
		if gossipKey, err = base64.StdEncoding.DecodeString(f.gossipKey); err != nil {
			return fmt.Errorf("--gossip-key: not base64: %w", err)
		}
	}
	cfg := cluster.Config{
		NodeID:                f.nodeID,
		DataDir:               f.dataDir,
		RaftAddr:              f.raftAddr,
		RaftAdvertiseAddr:     raftAdvertise,
		GossipAddr:            f.gossipAddr,
		GossipAdvertise:       advertised(f.advertise, f.gossipAddr),
		GRPCAddr:              advertised(f.advertise, lis.Addr().String()),
		BootstrapExpect:       f.bootstrapExpect,
		Join:                  f.join,
		Limits:                f.limits(),
		MaxInflightProposals:  f.maxInflight,
		MaxInflightForwards:   f.maxInflightForwards,
		Raft:                  rc,
		PeerDialOptions:       peerDial,
		GossipKey:             gossipKey,
		UnsafeLocalReads:      f.unsafeLocalReads,
		DeadServerCleanup:     f.deadServerCleanup,
		MinFreeDisk:           f.minFreeDisk,
		StreamSubscriberBytes: f.streamSubscriberBytes,
		StreamNodeBytes:       f.streamNodeBytes,
		StreamStallTimeout:    f.streamStallTimeout,
		Version:               version,
		Logger:                logger,
	}
	if f.debugClockOffsetFile != "" {
		clk, err := startOffsetClock(f.debugClockOffsetFile, 50*time.Millisecond, logger)
		if err != nil {
			return err
		}
		defer clk.Stop()
		cfg.Clock = clk.Now
		logger.Warn("--debug-clock-offset-file is on: OccurredAt follows an injected clock; never use this outside fault testing",
			"file", f.debugClockOffsetFile, "offset", clk.Offset())
	}
	if f.unsafeLocalReads {
		logger.Warn("--unsafe-local-reads is on: default reads may return stale data; never use this outside fault testing")
	}
	var met *metrics.Metrics
	var metricsLis net.Listener
	if f.metricsAddr != "" {
		if metricsLis, err = net.Listen("tcp", f.metricsAddr); err != nil {
			return fmt.Errorf("listen on --metrics-addr %s: %w", f.metricsAddr, err)
		}
		defer metricsLis.Close()
		met = metrics.New()
		cfg.OnApply = met.ObserveApply
		cfg.OnPropose = met.ObservePropose
		cfg.OnStoreLogs = met.ObserveStoreLogs
		cfg.OnRedelivery = met.ObserveRedelivery
		cfg.OnParked = met.ObserveParked
		if f.pprof {
			runtime.SetBlockProfileRate(f.blockProfileRate)
			runtime.SetMutexProfileFraction(f.mutexProfileFraction)
		}
	} else if f.pprof {
		return errors.New("--pprof needs --metrics-addr (pprof is served on the metrics port)")
	}
	node, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}

	// One interceptor chain for every client call, whichever listener it
	// came in on: the gRPC port, or the in-process pipe of the HTTP API.
	clientOpts := func(limits server.ConnLimits) []grpc.ServerOption {
		opts := []grpc.ServerOption{
			grpc.MaxRecvMsgSize(maxGRPCMessage),
			// Permit the Go client's keepalive pings (every 30 s while a call
			// or stream is open): gRPC's default policy answers pings more
			// often than every 5 minutes with GOAWAY "too_many_pings".
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		}
		if met != nil {
			opts = append(opts, met.ServerOptions()...)
		}
		opts = append(opts, server.CodecOption())
		opts = append(opts, server.LoggingInterceptors(logger, f.nodeID, func() uint64 { return node.Raft().CurrentTerm() })...)
		// After logging, so that every refused call is logged with its code.
		opts = append(opts, authOpts...)
		opts = append(opts, limits.ServerOptions()...)
		return append(opts, server.RecoveryInterceptors(logger)...) // last: closest to the handlers
	}
	var serverTLS *tls.Config
	switch {
	case ident != nil:
		serverTLS = ident.serverConfig(certs)
	case certs != nil:
		serverTLS = certs.ServerConfig()
	}
	opts := clientOpts(server.ConnLimits{MaxConcurrentStreams: uint32(min(f.maxStreamsPerConn, 1<<31)), MaxSubscriptionsPerConn: f.maxSubsPerConn})
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	srv := grpc.NewServer(opts...)
	es := server.NewEventStore(node, logger)
	if met != nil {
		es.WithObserver(met)
		met.Attach(ctx, node)
		hsrv := &http.Server{Handler: met.Handler(f.pprof), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hsrv.Serve(metricsLis) }()
		defer hsrv.Close()
		logger.Info("metrics serving", "addr", metricsLis.Addr().String(), "pprof", f.pprof)
	}
	es.Register(srv)
	admin := adminsvc.NewAdmin(node, logger).WithMaxRestoreBytes(f.maxRestoreBytes)
	admin.Register(srv)
	cluster.RegisterPeerService(srv, node)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	if err := server.CheckAccessRules(srv); err != nil {
		_ = node.Close()
		return err
	}
	go adminsvc.WatchHealth(ctx, node, hs)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	gw, err := startHTTP(&f, fs, httpDeps{
		limits: f.limits(), tls: serverTLS, logger: logger,
		// Every HTTP request shares the pipe's one connection: its stream
		// and subscription caps are the HTTP API's, node-wide.
		grpcOpts: clientOpts(server.ConnLimits{MaxConcurrentStreams: httpMaxCalls, MaxSubscriptionsPerConn: httpMaxStreams}),
		register: func(r grpc.ServiceRegistrar) { es.Register(r); admin.Register(r) },
		ui:       console.Handler(),
	})
	if err != nil {
		srv.Stop()
		_ = node.Close()
		return err
	}
	logger.Info("factstr node serving", "node", f.nodeID, "grpc", lis.Addr().String(), "http", gw.addr(), "raft", f.raftAddr,
		"gossip", f.gossipAddr, "data_dir", f.dataDir, "bootstrap_expect", f.bootstrapExpect, "version", version)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		logger.Error("grpc server stopped", "error", err)
	}
	hs.Shutdown()
	gw.shutdown(2 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if f.leaveOnTerminate {
			lctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout/2)
			if err := node.Admin().Leave(lctx); err != nil {
				logger.Warn("leave on terminate", "error", err)
			}
			cancel()
		}
		if err := node.Close(); err != nil {
			logger.Warn("close node", "error", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(f.shutdownTimeout):
		logger.Error("graceful shutdown timed out")
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		srv.Stop()
	}
	gw.stop()
	return nil
}

// advertised replaces the host of bind with host, if given.
func advertised(host, bind string) string {
	if host == "" {
		return bind
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind
	}
	return net.JoinHostPort(host, port)
}

// checkDialAddr accepts a host:port peers can dial: a host that is neither
// empty nor a wildcard, and a port in 1..65535.
func checkDialAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host; name the address peers dial", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is a wildcard address, which peers cannot dial", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q has port %q, not a number in 1..65535", addr, port)
	}
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// loadTLS loads the certificate, key and CA bundle and keeps re-reading
// them when they change (internal/certreload), until ctx is done or the
// reloader is closed; nil without TLS flags. With a CA, the gRPC server,
// peer dials and Raft require certificates it signed (mutual TLS).
func loadTLS(ctx context.Context, certFile, keyFile, caFile string, logger *slog.Logger) (*certreload.Reloader, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	r, err := certreload.Start(ctx, certreload.Options{CertFile: certFile, KeyFile: keyFile, CAFile: caFile,
		Logger: logger.With("logger", "certreload")})
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
	}
	return r, nil
}
