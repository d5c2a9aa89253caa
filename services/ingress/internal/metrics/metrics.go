// Package metrics defines the ingress's Prometheus metrics and serves them
// from a registry of its own. *Metrics is the httpapi.Observer that run
// hands to the HTTP server and the connlimit.Observer it hands to the
// listener, and it follows the broker connection through a callback.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pkgmetrics "github.com/railco/relay/pkg/metrics"
)

// Metric names.
const (
	Requests        = "relay_ingress_requests_total"
	RequestDuration = "relay_ingress_request_duration_seconds"
	PublishConfirm  = "relay_ingress_publish_confirm_seconds"
	BrokerConnected = "relay_ingress_broker_connected"
	BrokerBlocked   = "relay_ingress_broker_blocked"
	ConnectionsOpen = "relay_ingress_connections_open"
	ConnectionsIdle = "relay_ingress_connections_idle"
	ConnectionsShed = "relay_ingress_connections_shed_total"
)

// Names lists the metrics this package defines (not the Go, process and
// queue collectors'): a test checks that the dashboard asks for no others.
var Names = []string{Requests, RequestDuration, PublishConfirm, BrokerConnected, BrokerBlocked,
	ConnectionsOpen, ConnectionsIdle, ConnectionsShed}

// Histograms lists the names in Names that are histograms.
var Histograms = []string{RequestDuration, PublishConfirm}

// latencyBuckets reach down to the half millisecond a confirm takes on an
// idle broker, and up to PUBLISH_TIMEOUT's default (5s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is safe for concurrent use.
type Metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	duration        prometheus.Histogram
	confirm         prometheus.Histogram
	brokerConnected prometheus.Gauge
	connsOpen       prometheus.Gauge
	connsIdle       prometheus.Gauge
	refused         prometheus.Counter
	reclaimed       prometheus.Counter
}

// New returns the ingress's metrics in a new registry, together with the Go
// and process collectors and extra (the queue poller). blocked reports
// whether a broker resource alarm blocks publishing (Publisher.Blocked).
func New(blocked func() bool, extra ...prometheus.Collector) *Metrics {
	m := &Metrics{
		reg: pkgmetrics.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Requests,
			Help: "HTTP requests answered, by status code and outcome (accepted, invalid, not_stored, ... as in the request log; probes and scrapes included).",
		}, []string{"code", "outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    RequestDuration,
			Help:    "Time to answer POST /catering/register, whatever the answer, the broker's confirm included.",
			Buckets: latencyBuckets,
		}),
		confirm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    PublishConfirm,
			Help:    "Time from publishing a registration to the broker's confirm, for registrations stored (202).",
			Buckets: latencyBuckets,
		}),
		brokerConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: BrokerConnected,
			Help: "1 while the ingress has a connection to RabbitMQ, else 0.",
		}),
	}
	m.connsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ConnectionsOpen,
		Help: "Client connections open now, idle ones included; at most INGRESS_MAX_CONNECTIONS.",
	})
	m.connsIdle = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ConnectionsIdle,
		Help: "Open client connections waiting for a request (keep-alive between requests, or new and silent): the first closed when a new connection needs a slot.",
	})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ConnectionsShed,
		Help: "Client connections shed at INGRESS_MAX_CONNECTIONS: reclaimed (an idle one closed to admit a new one) or refused (a new one answered 503 and closed because all were busy).",
	}, []string{"action"})
	m.refused, m.reclaimed = shed.WithLabelValues("refused"), shed.WithLabelValues("reclaimed")
	blockedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: BrokerBlocked,
		Help: "1 while a broker resource alarm (memory, disk) blocks publishing and registrations get 503, else 0.",
	}, func() float64 {
		if blocked() {
			return 1
		}
		return 0
	})
	// The answers that matter most exist from the start, so rate() sees a 0
	// rather than no data.
	m.requests.WithLabelValues("202", "accepted")
	m.requests.WithLabelValues("503", "not_stored")
	m.reg.MustRegister(m.requests, m.duration, m.confirm, m.brokerConnected, blockedGauge, m.connsOpen, m.connsIdle, shed)
	m.reg.MustRegister(extra...)
	return m
}

// Handler serves the metrics (GET /metrics).
func (m *Metrics) Handler() http.Handler { return pkgmetrics.Handler(m.reg) }

// Gatherer returns the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Answered implements httpapi.Observer.
func (m *Metrics) Answered(status int, outcome string) {
	if outcome == "" {
		outcome = "unknown"
	}
	m.requests.WithLabelValues(strconv.Itoa(status), outcome).Inc()
}

// Registration implements httpapi.Observer.
func (m *Metrics) Registration(took time.Duration) { m.duration.Observe(took.Seconds()) }

// Confirmed implements httpapi.Observer.
func (m *Metrics) Confirmed(took time.Duration) { m.confirm.Observe(took.Seconds()) }

// BrokerConnected follows the broker connection; it is broker.Dialer.OnConnected.
func (m *Metrics) BrokerConnected(up bool) {
	if up {
		m.brokerConnected.Set(1)
		return
	}
	m.brokerConnected.Set(0)
}

// ConnectionsOpen implements connlimit.Observer.
func (m *Metrics) ConnectionsOpen(open, idle int) {
	m.connsOpen.Set(float64(open))
	m.connsIdle.Set(float64(idle))
}

// ConnectionRefused implements connlimit.Observer.
func (m *Metrics) ConnectionRefused() { m.refused.Inc() }

// ConnectionReclaimed implements connlimit.Observer.
func (m *Metrics) ConnectionReclaimed() { m.reclaimed.Inc() }
