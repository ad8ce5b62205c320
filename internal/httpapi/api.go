package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/contract"
)

// OpenAPI is the OpenAPI 3 document of the API, served at GET
// /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Defaults of Config.
const (
	DefaultKeepAlive      = 15 * time.Second
	DefaultMaxQueryString = 32 << 10
	// bodyReadTimeout bounds reading one request body; the server itself
	// has no read or write timeout, which would cut streams.
	bodyReadTimeout = 60 * time.Second
	// DefaultWriteStallTimeout bounds each write of an answer (one SSE
	// event, one chunk of a query result) to a client that stopped reading.
	DefaultWriteStallTimeout = 60 * time.Second
)

// Config configures the API. Conn is required.
type Config struct {
	// Conn reaches the node's own EventStoreService and AdminService,
	// normally through a PipeListener, with the node's interceptors.
	Conn grpc.ClientConnInterface
	// Limits size the request body bound (0 fields: contract.DefaultLimits).
	Limits contract.Limits
	// MaxBodyBytes bounds a request body (0: room for a largest batch and
	// context under Limits; see maxBody).
	MaxBodyBytes int64
	// MaxQueryString bounds the URL query of GET routes (0:
	// DefaultMaxQueryString); longer stream queries go by POST /v1/stream.
	MaxQueryString int
	// KeepAlive is the interval of SSE keepalive comments (0:
	// DefaultKeepAlive).
	KeepAlive time.Duration
	// WriteStallTimeout bounds each write to a client (0:
	// DefaultWriteStallTimeout): the server has no write timeout, streams
	// being long, so a client that stops reading without closing would
	// otherwise hold its handler and its subscription forever.
	WriteStallTimeout time.Duration
	// LoopbackHostsOnly refuses requests whose Host is not localhost or a
	// loopback IP. Set it when the server listens on loopback only: a web
	// page whose name an attacker rebinds to 127.0.0.1 is then refused
	// although the browser deems it same-origin (DNS rebinding).
	LoopbackHostsOnly bool
	// UI, if set, is served at "/" and below, outside /v1/ (the console).
	UI http.Handler
	// Logger logs what the HTTP layer itself refuses (nil: slog.Default()).
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Conn == nil {
		return errors.New("httpapi: Config.Conn is required")
	}
	if c.MaxBodyBytes < 0 || c.MaxQueryString < 0 || c.KeepAlive < 0 || c.WriteStallTimeout < 0 {
		return errors.New("httpapi: negative bound in Config")
	}
	if c.Limits == (contract.Limits{}) {
		c.Limits = contract.DefaultLimits
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = maxBody(c.Limits)
	}
	if c.MaxQueryString == 0 {
		c.MaxQueryString = DefaultMaxQueryString
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.WriteStallTimeout == 0 {
		c.WriteStallTimeout = DefaultWriteStallTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// maxBody is room for the largest batch the limits accept: its bytes twice
// (JSON escapes in types), a per-event envelope, and a megabyte for the
// context and the rest.
func maxBody(l contract.Limits) int64 {
	return 2*int64(l.MaxBatchBytes) + 64*int64(l.MaxBatchEvents) + 1<<20
}

// Route is one served method and path (a net/http pattern) and the gRPC
// method whose access rule and semantics it has.
type Route struct {
	Method, Path string
	GRPCMethod   string
	handler      http.HandlerFunc
}

// API is the HTTP handler of the API.
type API struct {
	cfg    Config
	es     factstrv1.EventStoreServiceClient
	admin  factstrv1.AdminServiceClient
	routes []Route
	mux    *http.ServeMux
	// csrf refuses state-changing requests a browser sends from another
	// origin: a web page must not append to, or reconfigure, a node on
	// the visitor's loopback that has no tokens (curl and other
	// non-browser clients are not affected).
	csrf *http.CrossOriginProtection
	// closing is closed by CloseStreams.
	closing   chan struct{}
	closeOnce sync.Once
}

// CloseStreams ends every open stream with an UNAVAILABLE error event, so
// that their clients resume on another node, and every later one at once.
// Call it before http.Server.Shutdown, which waits for handlers: a
// stream's handler never returns by itself.
func (a *API) CloseStreams() { a.closeOnce.Do(func() { close(a.closing) }) }

// New returns the API over cfg.Conn.
func New(cfg Config) (*API, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, es: factstrv1.NewEventStoreServiceClient(cfg.Conn), admin: factstrv1.NewAdminServiceClient(cfg.Conn),
		csrf: http.NewCrossOriginProtection(), closing: make(chan struct{})}
	es, adm := "/factstr.v1.EventStoreService/", "/factstr.v1.AdminService/"
	a.routes = []Route{
		{"POST", "/v1/append", es + "Append", a.append},
		{"POST", "/v1/append-if", es + "AppendIf", a.appendIf},
		{"POST", "/v1/query", es + "Query", a.query},
		{"GET", "/v1/stream", es + "Stream", a.streamGet},
		{"POST", "/v1/stream", es + "Stream", a.streamPost},
		{"GET", "/v1/durable/{name}/stream", es + "StreamDurable", a.durable},
		{"GET", "/v1/durable", adm + "ListDurableStreams", unary(a, a.admin.ListDurableStreams, nil)},
		{"GET", "/v1/durable/{name}", adm + "GetDurableStream", unary(a, a.admin.GetDurableStream, func(r *http.Request, req *factstrv1.GetDurableStreamRequest) error {
			req.Name = r.PathValue("name")
			return nil
		})},
		{"POST", "/v1/durable/{name}/reset", adm + "ResetDurableStream", unary(a, a.admin.ResetDurableStream, func(r *http.Request, req *factstrv1.ResetDurableStreamRequest) error {
			req.Name = r.PathValue("name")
			return nil
		})},
		{"DELETE", "/v1/durable/{name}", adm + "DeleteDurableStream", unary(a, a.admin.DeleteDurableStream, func(r *http.Request, req *factstrv1.DeleteDurableStreamRequest) error {
			req.Name = r.PathValue("name")
			force, err := boolParam(r, "force")
			req.Force = force
			return err
		})},
		{"GET", "/v1/durable/{name}/parked", adm + "ParkedList", unary(a, a.admin.ParkedList, func(r *http.Request, req *factstrv1.ParkedListRequest) error {
			req.Name = r.PathValue("name")
			after, err := uintParam(r, "after", 1<<64-1)
			req.After = after
			if err != nil {
				return err
			}
			limit, err := uintParam(r, "limit", 1<<32-1)
			req.Limit = uint32(limit)
			return err
		})},
		{"POST", "/v1/durable/{name}/parked/redeliver", adm + "ParkedRedeliver", unary(a, a.admin.ParkedRedeliver, func(r *http.Request, req *factstrv1.ParkedRedeliverRequest) error {
			req.Name = r.PathValue("name")
			return nil
		})},
		{"DELETE", "/v1/durable/{name}/parked", adm + "ParkedDrop", unary(a, a.admin.ParkedDrop, func(r *http.Request, req *factstrv1.ParkedDropRequest) error {
			req.Name = r.PathValue("name")
			upTo, err := uintParam(r, "up_to", 1<<64-1)
			req.UpTo = upTo
			return err
		})},
		{"GET", "/v1/status", adm + "Status", unary(a, a.admin.Status, nil)},
		{"GET", "/v1/members", adm + "Members", unary(a, a.admin.Members, nil)},
		{"POST", "/v1/admin/join", adm + "Join", unary(a, a.admin.Join, nil)},
		{"POST", "/v1/admin/remove", adm + "Remove", unary(a, a.admin.Remove, nil)},
		{"POST", "/v1/admin/leave", adm + "Leave", unary(a, a.admin.Leave, nil)},
		{"POST", "/v1/admin/transfer-leadership", adm + "TransferLeadership", unary(a, a.admin.TransferLeadership, nil)},
		{"GET", "/v1/openapi.json", "", a.openAPI},
	}
	a.mux = http.NewServeMux()
	paths := http.NewServeMux() // every route's path, any method: tells 405 from 404
	seen := map[string]bool{}
	for _, r := range a.routes {
		a.mux.HandleFunc(r.Method+" "+r.Path, r.handler)
		if !seen[r.Path] {
			seen[r.Path] = true
			paths.Handle(r.Path, http.NotFoundHandler())
		}
	}
	a.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			var allow []string
			for _, rt := range a.routes {
				if rt.Path == pattern {
					allow = append(allow, rt.Method)
				}
			}
			for _, m := range allow {
				w.Header().Add("Allow", m)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write(errorBody(codes.Unimplemented, fmt.Sprintf("%s %s: method not allowed; allowed: %v", r.Method, r.URL.Path, allow), ""))
			return
		}
		writeError(w, status.Errorf(codes.NotFound, "no route %s %s; see GET /v1/openapi.json", r.Method, r.URL.Path))
	})
	if cfg.UI != nil {
		a.mux.Handle("/", cfg.UI)
	}
	return a, nil
}

// Routes are the served routes, in the order of the table.
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.cfg.LoopbackHostsOnly && !loopbackHost(r.Host) {
		writeError(w, status.Errorf(codes.PermissionDenied, "host %q: this node serves HTTP on loopback and answers only requests for localhost or a loopback address", r.Host))
		return
	}
	if err := a.csrf.Check(r); err != nil {
		writeError(w, status.Errorf(codes.PermissionDenied, "%v: a browser page of another origin may not call this node", err))
		return
	}
	if len(r.URL.RawQuery) > a.cfg.MaxQueryString {
		writeError(w, fmt.Errorf("%w: the URL query has %d bytes, the limit is %d; send a long stream query with POST /v1/stream",
			errURITooLong, len(r.URL.RawQuery), a.cfg.MaxQueryString))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	}
	a.mux.ServeHTTP(w, r)
}

// NewServer returns an http.Server for h with header and idle timeouts but
// no read or write timeout: SSE streams stay open as long as their client,
// and request bodies are bounded per request (ServeHTTP).
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// loopbackHost reports whether a Host header names localhost or a
// loopback IP (with or without a port).
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var errURITooLong = errors.New("URI too long")

// outgoing is the request's context with its Authorization header as gRPC
// metadata, so that the node's interceptors see the caller's token.
func outgoing(r *http.Request) context.Context {
	ctx := r.Context()
	if v := r.Header.Values("Authorization"); len(v) > 0 {
		kv := make([]string, 0, 2*len(v))
		for _, s := range v {
			kv = append(kv, "authorization", s)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	return ctx
}

// unary serves an admin call generically: a POST body decodes with
// protojson (proto field names, unknown fields refused; admin requests hold
// no JSON in bytes, where protojson would want base64), an empty body is
// the empty request, and the response encodes with appendMessage.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](a *API, call func(context.Context, PReq, ...grpc.CallOption) (Resp, error),
	fromURL func(*http.Request, PReq) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := PReq(new(Req))
		if r.Method == http.MethodPost {
			b, err := readBody(r)
			if err != nil {
				writeError(w, err)
				return
			}
			if len(bytes.TrimSpace(b)) > 0 {
				if err := protojson.Unmarshal(b, req); err != nil {
					writeError(w, fmt.Errorf("%w: invalid JSON: %w", errBadRequest, err))
					return
				}
			}
		}
		// What the path (and query string) says wins over the body.
		if fromURL != nil {
			if err := fromURL(r, req); err != nil {
				writeError(w, err)
				return
			}
		}
		resp, err := call(outgoing(r), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, appendMessage(nil, resp.ProtoReflect()))
	}
}

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	_, _ = w.Write(OpenAPI)
}

// uintParam reads an optional non-negative integer query parameter, at
// most maxV (absent: 0).
func uintParam(r *http.Request, name string, maxV uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxV {
		return 0, fmt.Errorf("%w: parameter %s=%q: want a number from 0 to %d", errBadRequest, name, v, maxV)
	}
	return n, nil
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: parameter %s=%q: want true or false", errBadRequest, name, v)
	}
	return b, nil
}
