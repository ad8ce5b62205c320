package metrics

import (
	"github.com/factstr/factstr-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// The failure policy "retry N then park" of durable streams: how often
// this node's streams delivered a batch again, how many events they
// parked, and (from the replicated state, the same on every node) how many
// each name holds parked now.

var descParked = prometheus.NewDesc(namespace+"_durable_stream_parked_events",
	"Events in the parked list of a durable stream name whose failure policy is retry then park (replicated state: every node reports every such name).", []string{"name"}, nil)

func (m *Metrics) registerParked() {
	m.redeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "durable_stream_redeliveries_total",
		Help: "Deliveries of a durable batch again after its handler failed (retry then park), by streams this node serves, by name.",
	}, []string{"name"})
	m.parkedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "durable_stream_parked_events_total",
		Help: "Events parked by durable streams this node serves, after every delivery their policy allowed failed, by name.",
	}, []string{"name"})
	m.reg.MustRegister(m.redeliveries, m.parkedTotal, parkedCollector{m})
}

// ObserveRedelivery counts one redelivery (cluster.Config.OnRedelivery).
func (m *Metrics) ObserveRedelivery(name string) { m.redeliveries.WithLabelValues(name).Inc() }

// ObserveParked counts parked events (cluster.Config.OnParked).
func (m *Metrics) ObserveParked(name string, events int) {
	m.parkedTotal.WithLabelValues(name).Add(float64(events))
}

// parkedCollector reports the parked-list sizes of an attached node that
// can tell them.
type parkedCollector struct{ m *Metrics }

func (c parkedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descParked }

func (c parkedCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	node := c.m.node
	c.m.mu.Unlock()
	p, ok := node.(interface{ DurableAdmin() *cluster.DurableAdmin })
	if !ok {
		return
	}
	for name, n := range p.DurableAdmin().ParkedCounts() {
		ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(n), name)
	}
}
