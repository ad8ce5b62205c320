package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/server"
	"github.com/factstr/factstr-go/raftlog"
)

type serveFlags struct {
	nodeID, dataDir                string
	grpcAddr, raftAddr, gossipAddr string
	advertise                      string
	bootstrapExpect                int
	join                           listFlag
	tlsCert, tlsKey, tlsCA         string
	token                          string
	maxPayload, maxBatch           int
	logLevel, logFormat            string
	leaveOnTerminate               bool
	unsafeLocalReads               bool
	snapshotThreshold              uint64
	heartbeat, election            time.Duration
	shutdownTimeout                time.Duration
}

func serveFlagSet(f *serveFlags) *flag.FlagSet {
	fs := newFlagSet("serve", "serve [flags]")
	fs.StringVar(&f.nodeID, "node-id", "node1", "this node's stable, unique id (in Kubernetes: the pod name)")
	fs.StringVar(&f.dataDir, "data-dir", "./factstr-data", "directory for the Raft log, snapshots and the event store")
	fs.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:7400", "host:port for the gRPC API (clients and peers)")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7401", "host:port for Raft traffic")
	fs.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:7402", "host:port for gossip (TCP and UDP)")
	fs.StringVar(&f.advertise, "advertise-addr", "", "host (name or IP) other nodes reach this one on; the ports are the bind ports (default: the bind hosts)")
	fs.IntVar(&f.bootstrapExpect, "bootstrap-expect", 1, "bootstrap a new cluster once this many nodes see each other (0: never, wait to be added)")
	fs.Var(&f.join, "join", "gossip addresses (host:port, DNS names allowed) of other nodes, comma-separated or repeated")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate for the gRPC server and for dialing peers")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle: clients and peers must present a certificate it signed (mutual TLS)")
	fs.StringVar(&f.token, "token", "", "require this bearer token from clients (health and peer calls exempt)")
	fs.IntVar(&f.maxPayload, "max-payload-bytes", contract.DefaultLimits.MaxPayloadBytes, "largest event payload accepted")
	fs.IntVar(&f.maxBatch, "max-batch-events", contract.DefaultLimits.MaxBatchEvents, "most events accepted in one append")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.leaveOnTerminate, "leave-on-terminate", false, "on SIGTERM leave the cluster (remove this voter) instead of only handing leadership over")
	fs.BoolVar(&f.unsafeLocalReads, "unsafe-local-reads", false, "DEBUG ONLY: serve default reads from local state without the read index (stale reads)")
	fs.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 8192, "Raft entries between snapshots")
	fs.DurationVar(&f.heartbeat, "raft-heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	fs.DurationVar(&f.election, "raft-election-timeout", time.Second, "Raft election timeout")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "bound on a graceful shutdown")
	return fs
}

func serve(ctx context.Context, args []string) error {
	var f serveFlags
	fs := serveFlagSet(&f)
	if err := parse(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)

	serverTLS, peerTLS, err := loadTLS(f.tlsCert, f.tlsKey, f.tlsCA)
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
	rc.TrailingLogs = f.snapshotThreshold + f.snapshotThreshold/4
	rc.HeartbeatTimeout, rc.ElectionTimeout = f.heartbeat, f.election
	rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, f.heartbeat/2)
	peerCreds := insecure.NewCredentials()
	if peerTLS != nil {
		peerCreds = credentials.NewTLS(peerTLS)
	}
	cfg := cluster.Config{
		NodeID:            f.nodeID,
		DataDir:           f.dataDir,
		RaftAddr:          f.raftAddr,
		RaftAdvertiseAddr: advertised(f.advertise, f.raftAddr),
		GossipAddr:        f.gossipAddr,
		GossipAdvertise:   advertised(f.advertise, f.gossipAddr),
		GRPCAddr:          advertised(f.advertise, lis.Addr().String()),
		BootstrapExpect:   f.bootstrapExpect,
		Join:              f.join,
		Limits:            contract.Limits{MaxPayloadBytes: f.maxPayload, MaxBatchEvents: f.maxBatch, MaxTypeBytes: contract.DefaultLimits.MaxTypeBytes},
		Raft:              rc,
		PeerDialOptions:   []grpc.DialOption{grpc.WithTransportCredentials(peerCreds)},
		UnsafeLocalReads:  f.unsafeLocalReads,
		Version:           version,
		Logger:            logger,
	}
	if f.unsafeLocalReads {
		logger.Warn("--unsafe-local-reads is on: default reads may return stale data; never use this outside fault testing")
	}
	node, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}

	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20)}
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	if f.token != "" {
		opts = append(opts, server.TokenInterceptors(f.token)...)
	}
	srv := grpc.NewServer(opts...)
	server.NewEventStore(node, cluster.Classify, logger).Register(srv)
	server.NewAdmin(node, logger).Register(srv)
	node.RegisterPeerService(srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	go server.WatchHealth(ctx, node, hs)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	logger.Info("factstr node serving", "node", f.nodeID, "grpc", lis.Addr().String(), "raft", f.raftAddr,
		"gossip", f.gossipAddr, "data_dir", f.dataDir, "bootstrap_expect", f.bootstrapExpect, "version", version)

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-serveErr:
		logger.Error("grpc server stopped", "error", err)
	}
	hs.Shutdown()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if f.leaveOnTerminate {
			lctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout/2)
			if err := node.Leave(lctx); err != nil {
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

// loadTLS builds the server and peer-dialing TLS configs. With a CA, both
// sides require certificates it signed (mutual TLS).
func loadTLS(certFile, keyFile, caFile string) (server, peer *tls.Config, err error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	peer = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", caFile)
		}
		server.ClientCAs = pool
		server.ClientAuth = tls.RequireAndVerifyClientCert
		peer.RootCAs = pool
	}
	return server, peer, nil
}
