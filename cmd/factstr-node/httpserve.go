package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/httpapi"
)

const (
	defaultHTTPAddr = "127.0.0.1:7403"
	// maxGRPCMessage is the largest message the node receives, on the
	// gRPC port and on the HTTP API's pipe.
	maxGRPCMessage = 64 << 20
	// httpMaxCalls and httpMaxStreams bound the calls and the open streams
	// of all HTTP clients of a node together (they share one in-process
	// gRPC connection).
	httpMaxCalls   = 4096
	httpMaxStreams = 1024
)

// httpDeps is what the HTTP API needs from the rest of serve.
type httpDeps struct {
	limits   contract.Limits
	tls      *tls.Config // the gRPC port's, when it has one
	logger   *slog.Logger
	grpcOpts []grpc.ServerOption         // the client-facing interceptor chain
	register func(grpc.ServiceRegistrar) // registers EventStoreService and AdminService
	ui       http.Handler
}

// gateway is the HTTP API of a running node: an HTTP server whose
// handlers call the node's gRPC services through an in-process pipe
// (internal/httpapi). Its methods do nothing on a nil gateway (HTTP off).
type gateway struct {
	lis   net.Listener
	api   *httpapi.API
	http  *http.Server
	pipe  *httpapi.PipeListener
	grpc  *grpc.Server
	conn  *grpc.ClientConn
	errCh chan error
}

// startHTTP serves the HTTP API on --http-addr, or returns nil when it is
// empty. When the flag was not given and its default port is taken (a
// second node on the same machine), the node runs without HTTP and warns:
// an explicit address that cannot be bound is an error.
func startHTTP(f *serveFlags, fs *flag.FlagSet, d httpDeps) (*gateway, error) {
	if f.httpAddr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		if !flagGiven(fs, "http-addr") {
			d.logger.Warn("HTTP API off: its default address is taken; give this node --http-addr (or --http-addr '' to silence this)", "addr", f.httpAddr, "error", err)
			return nil, nil
		}
		return nil, fmt.Errorf("listen on --http-addr %s: %w", f.httpAddr, err)
	}
	g := &gateway{lis: lis, pipe: httpapi.NewPipeListener(), grpc: grpc.NewServer(d.grpcOpts...), errCh: make(chan error, 2)}
	d.register(g.grpc)
	go func() { _ = g.grpc.Serve(g.pipe) }()
	if g.conn, err = g.pipe.Dial(maxGRPCMessage); err != nil {
		g.stop()
		return nil, fmt.Errorf("http api: %w", err)
	}
	api, err := httpapi.New(httpapi.Config{Conn: g.conn, Limits: d.limits, UI: d.ui, Logger: d.logger,
		LoopbackHostsOnly: isLoopback(f.httpAddr)})
	if err != nil {
		g.stop()
		return nil, err
	}
	g.api = api
	g.http = httpapi.NewServer(api, d.logger)
	if d.tls != nil {
		g.http.TLSConfig = d.tls.Clone()
		go func() { g.errCh <- g.http.ServeTLS(lis, "", "") }()
	} else {
		go func() { g.errCh <- g.http.Serve(lis) }()
	}
	return g, nil
}

func (g *gateway) addr() string {
	if g == nil {
		return ""
	}
	return g.lis.Addr().String()
}

// shutdown ends the streams (their clients resume elsewhere), stops
// accepting HTTP requests and waits up to grace for the calls in flight.
func (g *gateway) shutdown(grace time.Duration) {
	if g == nil || g.http == nil {
		return
	}
	g.api.CloseStreams()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := g.http.Shutdown(ctx); err != nil {
		_ = g.http.Close()
	}
}

// stop releases everything; after shutdown it only closes the pipe side.
func (g *gateway) stop() {
	if g == nil {
		return
	}
	if g.http != nil {
		_ = g.http.Close()
	} else {
		_ = g.lis.Close()
	}
	if g.conn != nil {
		_ = g.conn.Close()
	}
	g.grpc.Stop()
	_ = g.pipe.Close()
	for len(g.errCh) > 0 {
		if err := <-g.errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Default().Warn("http api stopped", "error", err)
		}
	}
}
