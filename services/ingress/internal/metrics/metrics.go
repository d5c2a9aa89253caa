// Package metrics defines the ingress's Prometheus metrics and serves them
// from a registry of its own. *Metrics is the httpapi.Observer that run
// hands to the HTTP server and the connlimit.Observer it hands to the
// listener, and it follows the broker connection through a callback.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
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
	ClientRequests  = "relay_ingress_client_requests_total"
	AuthFailures    = "relay_ingress_auth_failures_total"
	RateLimited     = "relay_ingress_rate_limited_total"
	APIClients      = "relay_ingress_api_clients"
	APIKeyReloads   = "relay_ingress_api_key_reloads_total"
	// DeliveryLatency is the time from acceptance to delivery of each
	// registration, observed as the index applies its delivered event;
	// OldestWaiting is the age of the oldest registration waiting in each
	// queue (main, retry tiers, dead), read from the index at each scrape.
	// Every ingress replica computes both from the same stream: aggregate
	// replicas with max, not sum.
	DeliveryLatency = "relay_registration_delivery_latency_seconds"
	OldestWaiting   = "relay_registration_oldest_waiting_seconds"
	// BuildInfo has the same name in both services, told apart by its
	// component label: relay_build_info{component, version, goversion} 1.
	BuildInfo = "relay_build_info"
)

// Names lists the metrics this package defines (not the Go, process and
// queue collectors'): a test checks that the dashboard asks for no others.
var Names = []string{Requests, RequestDuration, PublishConfirm, BrokerConnected, BrokerBlocked,
	ConnectionsOpen, ConnectionsIdle, ConnectionsShed, ClientRequests, AuthFailures, RateLimited,
	APIClients, APIKeyReloads, BuildInfo, DeliveryLatency, OldestWaiting}

// Histograms lists the names in Names that are histograms.
var Histograms = []string{RequestDuration, PublishConfirm, DeliveryLatency}

// Version is the version relay_build_info reports, read by New. main's init
// sets it from main.version, which make build and the Dockerfiles stamp with
// -ldflags "-X main.version=..."; tests see "dev".
var Version = "dev"

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
	clientRequests  *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	apiClients      prometheus.Gauge
	reloadOK        prometheus.Counter
	reloadFailed    prometheus.Counter
	events          *EventMetrics

	// The series every accepted registration counts in, resolved once:
	// WithLabelValues hashes and validates its labels on every call.
	accepted       prometheus.Counter                            // requests{202, accepted}
	clientAccepted atomic.Pointer[map[string]prometheus.Counter] // clientRequests{client, 202}; copied on write
	clientMu       sync.Mutex                                    // serialises writers of clientAccepted
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
	// The client label's values are bounded: the names in
	// INGRESS_API_KEYS_FILE, or "anonymous" without keys; never a key or an
	// address.
	m.clientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ClientRequests,
		Help: "POST /catering/register requests answered, by client (its API key's name, or anonymous without keys) and status code; requests refused 401 have no client.",
	}, []string{"client", "code"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: AuthFailures,
		Help: "Requests refused 401 for want of a known client's API key: missing (no Authorization, or not Bearer), malformed (Bearer without a usable token), invalid (no client's key).",
	}, []string{"reason"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RateLimited,
		Help: "Requests refused 429 because their client was over INGRESS_RATE_LIMIT, by client (anonymous without keys: limited per remote address).",
	}, []string{"client"})
	m.apiClients = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: APIClients,
		Help: "Clients in the API keys in use (INGRESS_API_KEYS_FILE); 0 when the ingress is open to anyone.",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: APIKeyReloads,
		Help: "Reloads of INGRESS_API_KEYS_FILE (on SIGHUP or a change), by result: success, or failure (the previous keys stay in use).",
	}, []string{"result"})
	m.reloadOK, m.reloadFailed = reloads.WithLabelValues("success"), reloads.WithLabelValues("failure")
	m.events = newEventMetrics()
	// The answers that matter most exist from the start, so rate() sees a 0
	// rather than no data.
	m.accepted = m.requests.WithLabelValues("202", "accepted")
	m.requests.WithLabelValues("503", "not_stored")
	m.clientAccepted.Store(&map[string]prometheus.Counter{})
	for _, reason := range []string{"missing", "malformed", "invalid"} {
		m.authFailures.WithLabelValues(reason)
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfo,
		Help:        "Always 1; its labels say which relay component runs, at which version, built with which Go.",
		ConstLabels: prometheus.Labels{"component": "ingress", "version": Version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.events.latency, m.events, buildInfo, m.requests, m.duration, m.confirm, m.brokerConnected, blockedGauge, m.connsOpen, m.connsIdle, shed,
		m.clientRequests, m.authFailures, m.rateLimited, m.apiClients, reloads)
	m.reg.MustRegister(extra...)
	return m
}

// Handler serves the metrics (GET /metrics).
func (m *Metrics) Handler() http.Handler { return pkgmetrics.Handler(m.reg) }

// Gatherer returns the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Answered implements httpapi.Observer.
func (m *Metrics) Answered(status int, outcome string) {
	if status == http.StatusAccepted && outcome == "accepted" {
		m.accepted.Inc()
		return
	}
	if outcome == "" {
		outcome = "unknown"
	}
	m.requests.WithLabelValues(strconv.Itoa(status), outcome).Inc()
}

// Registration implements httpapi.Observer.
func (m *Metrics) Registration(took time.Duration) { m.duration.Observe(took.Seconds()) }

// Confirmed implements httpapi.Observer.
func (m *Metrics) Confirmed(took time.Duration) { m.confirm.Observe(took.Seconds()) }

// ClientAnswered implements httpapi.Observer.
func (m *Metrics) ClientAnswered(client string, status int) {
	if status == http.StatusAccepted {
		m.clientAcceptedCounter(client).Inc()
		return
	}
	m.clientRequests.WithLabelValues(client, strconv.Itoa(status)).Inc()
}

// clientAcceptedCounter returns client's series of accepted registrations.
// Clients are few (the names in INGRESS_API_KEYS_FILE, or anonymous), so the
// map stays small and is copied only when a client sends its first.
func (m *Metrics) clientAcceptedCounter(client string) prometheus.Counter {
	if c, ok := (*m.clientAccepted.Load())[client]; ok {
		return c
	}
	m.clientMu.Lock()
	defer m.clientMu.Unlock()
	old := *m.clientAccepted.Load()
	if c, ok := old[client]; ok {
		return c
	}
	next := make(map[string]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	c := m.clientRequests.WithLabelValues(client, "202")
	next[client] = c
	m.clientAccepted.Store(&next)
	return c
}

// AuthFailed implements httpapi.Observer.
func (m *Metrics) AuthFailed(reason string) { m.authFailures.WithLabelValues(reason).Inc() }

// RateLimited implements httpapi.Observer.
func (m *Metrics) RateLimited(client string) { m.rateLimited.WithLabelValues(client).Inc() }

// Clients makes each named client's series exist with 0 from the start, so
// that rate() sees a 0 rather than no data for a client that has sent
// nothing yet: the names in INGRESS_API_KEYS_FILE, or "anonymous".
func (m *Metrics) Clients(names ...string) {
	for _, name := range names {
		m.clientAcceptedCounter(name)
		m.rateLimited.WithLabelValues(name)
	}
}

// KeysLoaded sets the number of clients whose API keys are in use.
func (m *Metrics) KeysLoaded(clients int) { m.apiClients.Set(float64(clients)) }

// KeysReloaded counts a reload of the API keys file (apikey.Options.OnLoad):
// clients is the number in use now, err the reload's failure.
func (m *Metrics) KeysReloaded(clients int, err error) {
	m.apiClients.Set(float64(clients))
	if err != nil {
		m.reloadFailed.Inc()
		return
	}
	m.reloadOK.Inc()
}

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

// deliveryBuckets span a delivery at once (milliseconds) to one after
// retries and an outage (hours).
var deliveryBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Events has oldest read at each scrape for
// relay_registration_oldest_waiting_seconds, and returns the index's
// Observer, which feeds relay_registration_delivery_latency_seconds. Without
// it (EVENTS=off) neither has a sample.
func (m *Metrics) Events(oldest func() (map[string]time.Time, error)) *EventMetrics {
	m.events.oldest.Store(&oldest)
	return m.events
}

// EventMetrics is the index.Observer, and collects the oldest-waiting gauge.
type EventMetrics struct {
	latency prometheus.Histogram
	oldest  atomic.Pointer[func() (map[string]time.Time, error)]
	desc    *prometheus.Desc
}

func newEventMetrics() *EventMetrics {
	return &EventMetrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    DeliveryLatency,
			Help:    "Time from a registration's acceptance to its delivery, from the event stream.",
			Buckets: deliveryBuckets,
		}),
		desc: prometheus.NewDesc(OldestWaiting,
			"Age of the oldest registration waiting in each queue (main, retry tiers, dead), from the event stream.", []string{"queue"}, nil),
	}
}

// Delivered implements index.Observer.
func (e *EventMetrics) Delivered(latency time.Duration) { e.latency.Observe(max(latency, 0).Seconds()) }

// Describe implements prometheus.Collector.
func (e *EventMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

// Collect implements prometheus.Collector: nothing until Events was called.
func (e *EventMetrics) Collect(ch chan<- prometheus.Metric) {
	f := e.oldest.Load()
	if f == nil {
		return
	}
	oldest, err := (*f)()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(e.desc, err)
		return
	}
	now := time.Now()
	for q, since := range oldest {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, max(now.Sub(since), 0).Seconds(), q)
	}
}
