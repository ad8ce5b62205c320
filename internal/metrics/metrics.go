// Package metrics exports a node's Prometheus metrics: gRPC requests, append
// and group-commit sizes, state machine apply latency, Raft state, file
// sizes and streams. Every Metrics has its own prometheus.Registry; nothing
// is registered globally, so several nodes can run in one process (tests).
package metrics

import (
	"context"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/cluster"
)

const namespace = "factstr"

// Node is what the metrics read from a running node at scrape time
// (cluster.Node implements it).
type Node interface {
	Raft() *raft.Raft
	Info() cluster.Info
}

// Metrics holds one node's collectors.
type Metrics struct {
	reg *prometheus.Registry

	rpcHandled  *prometheus.CounterVec
	rpcSeconds  *prometheus.HistogramVec
	appendBatch *prometheus.HistogramVec

	applyEntries    prometheus.Histogram
	applyCommands   prometheus.Histogram
	applySeconds    prometheus.Histogram
	proposeCommands *prometheus.HistogramVec
	proposeGroups   *prometheus.HistogramVec
	storeLogs       prometheus.Histogram

	leaderChanges     prometheus.Counter
	heartbeatFailures *prometheus.CounterVec

	subscribers *prometheus.GaugeVec
	slowDropped prometheus.Counter

	redeliveries, parkedTotal *prometheus.CounterVec // see parked.go

	mu       sync.Mutex
	node     Node
	durables map[string]durablePos
}

type durablePos struct {
	pos uint64
	at  time.Time // commit time of the last event delivered, zero if unknown
}

// New returns metrics with a fresh registry that already holds the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), durables: make(map[string]durablePos)}
	latency := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100µs .. 13s
	m.rpcHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "grpc_server_handled_total",
		Help: "gRPC calls completed by this node, by service, method and status code.",
	}, []string{"grpc_service", "grpc_method", "grpc_code"})
	m.rpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "grpc_server_handling_seconds",
		Help:    "Time from receiving a gRPC call to its end, by service, method and status code (for streams: the stream's whole life).",
		Buckets: latency,
	}, []string{"grpc_service", "grpc_method", "grpc_code"})
	m.appendBatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "append_batch_events",
		Help:    "Events per Append or AppendIf request received by this node.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
	}, []string{"op"})
	m.applyEntries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "fsm_apply_batch_entries",
		Help:    "Raft log entries per state machine batch (one bbolt transaction): the group-commit size.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	m.applyCommands = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "fsm_apply_batch_commands",
		Help:    "Commands (appends, cursor moves, leases) per state machine batch.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	m.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "fsm_apply_duration_seconds",
		Help:    "Time to apply one batch to the state machine (decode and one bbolt transaction).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16), // 50µs .. 1.6s
	})
	m.proposeCommands = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "propose_batch_commands",
		Help:    "Commands per coalesced proposal: kind entry is one Raft entry this node proposed as leader, kind forward one batch it forwarded to the leader.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	}, []string{"kind"})
	m.proposeGroups = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "propose_batch_callers",
		Help:    "Callers (or forwarded batches) per coalesced proposal, by kind as propose_batch_commands.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	}, []string{"kind"})
	m.storeLogs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "raft_store_logs_entries",
		Help:    "Raft log entries per write to the Raft log (one fsync'd commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "raft_leader_changes_total",
		Help: "Times this node observed a new leader (including itself).",
	})
	m.heartbeatFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "raft_heartbeat_failures_total",
		Help: "Failed heartbeats from this node, as leader, to a follower.",
	}, []string{"peer"})
	m.subscribers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "stream_subscribers",
		Help: "Streams this node serves right now, by kind (live or durable).",
	}, []string{"kind"})
	m.slowDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "stream_slow_subscribers_dropped_total",
		Help: "Live stream subscribers ended with ResourceExhausted because their client took no delivery within --stream-stall-timeout. No event is lost: the client resumes after the last event it received.",
	})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.rpcHandled, m.rpcSeconds, m.appendBatch,
		m.applyEntries, m.applyCommands, m.applySeconds,
		m.proposeCommands, m.proposeGroups, m.storeLogs,
		m.leaderChanges, m.heartbeatFailures,
		m.subscribers, m.slowDropped,
		&nodeCollector{m: m},
	)
	// Create the label sets that always exist, so they show up before the
	// first stream.
	m.subscribers.WithLabelValues("live")
	m.subscribers.WithLabelValues("durable")
	m.registerParked()
	return m
}

// Registry is the node's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveApply records one state machine batch (cluster.Config.OnApply).
func (m *Metrics) ObserveApply(entries, commands int, took time.Duration) {
	m.applyEntries.Observe(float64(entries))
	m.applyCommands.Observe(float64(commands))
	m.applySeconds.Observe(took.Seconds())
}

// ObservePropose records one coalesced proposal (cluster.Config.OnPropose).
func (m *Metrics) ObservePropose(kind string, groups, commands int) {
	m.proposeCommands.WithLabelValues(kind).Observe(float64(commands))
	m.proposeGroups.WithLabelValues(kind).Observe(float64(groups))
}

// ObserveStoreLogs records one write to the Raft log (cluster.Config.OnStoreLogs).
func (m *Metrics) ObserveStoreLogs(entries int) { m.storeLogs.Observe(float64(entries)) }

// Attach starts reading node at scrape time and observing its Raft
// (leader changes, heartbeat failures) until ctx ends.
func (m *Metrics) Attach(ctx context.Context, node Node) {
	m.mu.Lock()
	m.node = node
	m.mu.Unlock()
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation:
			return true
		}
		return false
	})
	r := node.Raft()
	r.RegisterObserver(obs)
	go func() {
		defer r.DeregisterObserver(obs)
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-ch:
				switch d := o.Data.(type) {
				case raft.LeaderObservation:
					if d.LeaderID != "" {
						m.leaderChanges.Inc()
					}
				case raft.FailedHeartbeatObservation:
					m.heartbeatFailures.WithLabelValues(string(d.PeerID)).Inc()
				}
			}
		}
	}()
}

// SubscriberStarted implements server.StreamObserver.
func (m *Metrics) SubscriberStarted(kind string) { m.subscribers.WithLabelValues(kind).Inc() }

// SubscriberEnded implements server.StreamObserver.
func (m *Metrics) SubscriberEnded(kind string) { m.subscribers.WithLabelValues(kind).Dec() }

// SubscriberTooSlow implements server.StreamObserver.
func (m *Metrics) SubscriberTooSlow() { m.slowDropped.Inc() }

// DurableAt implements server.StreamObserver.
func (m *Metrics) DurableAt(name string, pos uint64, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.durables[name]
	if pos < d.pos {
		return // positions only move forward
	}
	d.pos = pos
	if !at.IsZero() {
		d.at = at
	}
	m.durables[name] = d
}

// DurableEnded implements server.StreamObserver.
func (m *Metrics) DurableEnded(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.durables, name)
}

// UnaryInterceptor counts and times unary calls, and records append sizes.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		switch r := req.(type) {
		case *factstrv1.AppendRequest:
			m.appendBatch.WithLabelValues("append").Observe(float64(len(r.GetEvents())))
		case *factstrv1.AppendIfRequest:
			m.appendBatch.WithLabelValues("append_if").Observe(float64(len(r.GetEvents())))
		}
		start := time.Now()
		resp, err := h(ctx, req)
		m.observeRPC(info.FullMethod, err, time.Since(start))
		return resp, err
	}
}

// StreamInterceptor counts and times streaming calls, and records the
// append sizes of the calls a Writes stream carries.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		if info.FullMethod == factstrv1.EventStoreService_Writes_FullMethodName {
			ss = writesStream{ServerStream: ss, m: m}
		}
		err := h(srv, ss)
		m.observeRPC(info.FullMethod, err, time.Since(start))
		return err
	}
}

// writesStream observes the appends a Writes stream receives.
type writesStream struct {
	grpc.ServerStream
	m *Metrics
}

func (s writesStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	if r, ok := msg.(*factstrv1.WritesRequest); ok && err == nil {
		reqs := r.GetBatch()
		if len(reqs) == 0 {
			reqs = []*factstrv1.WritesRequest{r}
		}
		for _, r := range reqs {
			if a := r.GetAppend(); a != nil {
				s.m.appendBatch.WithLabelValues("append").Observe(float64(len(a.GetEvents())))
			} else if a := r.GetAppendIf(); a != nil {
				s.m.appendBatch.WithLabelValues("append_if").Observe(float64(len(a.GetEvents())))
			}
		}
	}
	return err
}

// ServerOptions are the interceptors as gRPC server options.
func (m *Metrics) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(m.StreamInterceptor()),
	}
}

// CallDone counts and times a call a Writes or Reads stream carried as
// the unary call it stands for (server.CallObserver).
func (m *Metrics) CallDone(fullMethod string, err error, took time.Duration) {
	m.observeRPC(fullMethod, err, took)
}

func (m *Metrics) observeRPC(fullMethod string, err error, took time.Duration) {
	service, method := splitMethod(fullMethod)
	code := status.Code(err).String()
	m.rpcHandled.WithLabelValues(service, method, code).Inc()
	m.rpcSeconds.WithLabelValues(service, method, code).Observe(took.Seconds())
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// Handler serves /metrics and, with withPprof, /debug/pprof/ without
// /debug/pprof/cmdline: the command line carries secrets (--token,
// --gossip-key).
func (m *Metrics) Handler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// nodeCollector reads the node's state at scrape time.
type nodeCollector struct{ m *Metrics }

var (
	descTerm        = desc("raft_term", "The node's current Raft term.")
	descCommit      = desc("raft_commit_index", "The highest Raft index this node knows to be committed.")
	descRaftApplied = desc("raft_applied_index", "The highest Raft index raft has handed to the state machine.")
	descLastLog     = desc("raft_last_log_index", "The last index in this node's Raft log.")
	descFSMApplied  = desc("fsm_applied_index", "The highest Raft index whose effects readers of this node's state machine see.")
	descState       = prometheus.NewDesc(namespace+"_raft_state", "1 for the node's current Raft state.", []string{"state"}, nil)
	descLeader      = desc("raft_is_leader", "1 if this node is the leader.")
	descHead        = desc("head_sequence_number", "The last committed sequence number this node has applied.")
	descFileSize    = prometheus.NewDesc(namespace+"_bbolt_file_size_bytes", "Size of the node's bbolt files: fsm (the event store) and raft (the Raft log).", []string{"file"}, nil)
	descStreams     = desc("stream_subscriptions", "Subscriptions active in this node's stream engine (live and durable).")
	descLagEv       = prometheus.NewDesc(namespace+"_durable_stream_lag_events", "Log positions between the head and what a durable stream served by this node has delivered and had acknowledged, or passed without a match (0 when caught up).", []string{"name"}, nil)
	descBehind      = desc("node_behind_seconds", "How far this node's state may be behind the Raft leader's: the time since it last had applied everything the leader had committed (about 0.25 s when it follows; it grows while the node is cut off, backed off or without a leader). Streams it serves are moved by Go clients past their bound.")
	descBehindIdx   = desc("node_behind_entries", "The highest leader commit index this node has learned minus the index it has applied.")
	descMemberLag   = prometheus.NewDesc(namespace+"_group_member_lag_events", "Log positions between the head and the lowest position of the partitions a consumer group member on this node holds (0 when caught up).", []string{"name", "member"}, nil)
	descLiveLag     = desc("live_stream_lag_events", "The largest head minus delivered position among the live streams this node serves (0 when all are caught up).")
	descLiveBehind  = desc("live_streams_behind", "How many live streams this node serves have not yet delivered up to its head.")
	descCommits     = desc("fsm_commits_total", "bbolt commits of the state machine; each carries every Raft entry applied since the one before (at most 50 ms apart, sooner when something reads).")
	descLagSecs     = prometheus.NewDesc(namespace+"_durable_stream_lag_seconds", "0 when a durable stream served by this node has delivered everything; else the age of the last event it delivered (an upper bound on how far behind it is).", []string{"name"}, nil)
)

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, nil, nil)
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descRaftApplied, descLastLog, descFSMApplied, descState, descLeader, descHead, descFileSize, descStreams, descLagEv, descLagSecs, descMemberLag, descBehind, descBehindIdx, descLiveLag, descLiveBehind, descCommits} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	node := c.m.node
	durables := make(map[string]durablePos, len(c.m.durables))
	for k, v := range c.m.durables {
		durables[k] = v
	}
	c.m.mu.Unlock()
	if node == nil {
		return
	}
	r := node.Raft()
	info := node.Info()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descTerm, float64(r.CurrentTerm()))
	gauge(descCommit, float64(r.CommitIndex()))
	gauge(descRaftApplied, float64(r.AppliedIndex()))
	gauge(descLastLog, float64(r.LastIndex()))
	gauge(descFSMApplied, float64(info.AppliedIndex))
	state := r.State()
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if s == state {
			v = 1
		}
		gauge(descState, v, strings.ToLower(s.String()))
	}
	leader := 0.0
	if state == raft.Leader {
		leader = 1
	}
	gauge(descLeader, leader)
	head := info.Head
	gauge(descHead, float64(head))
	for file, path := range map[string]string{
		"fsm":  filepath.Join(info.DataDir, "fsm.db"),
		"raft": filepath.Join(info.DataDir, "raft", "raft.db"),
	} {
		if fi, err := os.Stat(path); err == nil {
			gauge(descFileSize, float64(fi.Size()), file)
		}
	}
	gauge(descStreams, float64(info.Streams))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(info.FSMCommits))
	gauge(descBehind, info.Behind.Seconds())
	gauge(descBehindIdx, float64(info.ClusterIndex-min(info.ClusterIndex, info.AppliedIndex)))
	gauge(descLiveLag, float64(info.LiveLag))
	gauge(descLiveBehind, float64(info.LiveBehind))
	// A filtered stream passes events that do not match without a delivery:
	// its position comes from the stream engine, so that a caught-up
	// stream reports no lag.
	passed := info.DurablePositions
	now := time.Now()
	for name, d := range durables {
		d.pos = max(d.pos, passed[name])
		lag := 0.0
		secs := 0.0
		if head > d.pos {
			lag = float64(head - d.pos)
			if !d.at.IsZero() {
				secs = max(now.Sub(d.at).Seconds(), 0)
			}
		}
		gauge(descLagEv, lag, name)
		gauge(descLagSecs, secs, name)
	}
	for group, members := range info.GroupMembers {
		for member, pos := range members {
			gauge(descMemberLag, float64(head-min(head, pos)), group, member)
		}
	}
}
