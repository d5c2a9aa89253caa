// Package metrics defines the forwarder's Prometheus metrics and serves them
// from a registry of its own. *Metrics is the forwarder.Observer that run
// hands to the forwarder, and it follows the breaker and the broker
// connection through callbacks.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/railco/relay/pkg/envelope"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

// Metric names.
const (
	Deliveries         = "relay_forwarder_deliveries_total"
	AttemptResults     = "relay_forwarder_attempt_results_total"
	DeliveryAttempt    = "relay_forwarder_delivery_attempt"
	DeliveryDuration   = "relay_forwarder_delivery_duration_seconds"
	EndToEnd           = "relay_forwarder_end_to_end_seconds"
	DeadLetters        = "relay_forwarder_dead_letters_total"
	CircuitState       = "relay_forwarder_circuit_state"
	CircuitTransitions = "relay_forwarder_circuit_transitions_total"
	BrokerConnected    = "relay_forwarder_broker_connected"
	QueueLimitApplied  = "relay_forwarder_queue_limit_applied"
	// BuildInfo has the same name in both services, told apart by its
	// component label: relay_build_info{component, version, goversion} 1.
	BuildInfo = "relay_build_info"
)

// Names lists the metrics this package defines (not the Go, process and
// queue collectors'): a test checks that the dashboard asks for no others.
var Names = []string{Deliveries, AttemptResults, DeliveryAttempt, DeliveryDuration, EndToEnd, DeadLetters, CircuitState, CircuitTransitions, BrokerConnected, QueueLimitApplied, BuildInfo}

// Histograms lists the names in Names that are histograms.
var Histograms = []string{DeliveryAttempt, DeliveryDuration, EndToEnd}

// Version is the version relay_build_info reports, read by New. main's init
// sets it from main.version, which make build and the Dockerfiles stamp with
// -ldflags "-X main.version=..."; tests see "dev".
var Version = "dev"

// endToEndBuckets span a message that goes straight through (milliseconds)
// to one that waited out retry tiers or an outage (hours).
var endToEndBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}

// Metrics is safe for concurrent use.
type Metrics struct {
	reg                *prometheus.Registry
	deliveries         *prometheus.CounterVec
	results            *prometheus.CounterVec
	attempt            prometheus.Histogram
	duration           prometheus.Histogram
	endToEnd           prometheus.Histogram
	deadLetters        *prometheus.CounterVec
	circuitState       prometheus.Gauge
	circuitTransitions *prometheus.CounterVec
	brokerConnected    prometheus.Gauge
	limitApplied       prometheus.Gauge

	// Every attempt counts in a results and a deliveries series. Their label
	// values are fixed lists, so each series is resolved once here:
	// WithLabelValues hashes and validates its labels on every call. Read
	// only after New.
	outcomes, resultsBy map[string]prometheus.Counter
}

// New returns the forwarder's metrics in a new registry, together with the
// Go and process collectors and extra (the queue poller).
func New(extra ...prometheus.Collector) *Metrics {
	m := &Metrics{
		reg: pkgmetrics.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Deliveries,
			Help: "Deliveries handled, by outcome: delivered, retry, dead-lettered, returned-to-queue, requeued (the move failed; the broker redelivers), and not-counted attempts (backend unreachable, failed probe).",
		}, []string{"outcome"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: AttemptResults,
			Help: "Delivery attempts, counted or not, by what they got back: 1xx, 2xx, 3xx (a redirect, never followed), 4xx, 5xx, timeout, unreachable, incomplete (an answer cut short or given before the request was sent), unsendable, panic.",
		}, []string{"result"}),
		attempt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    DeliveryAttempt,
			Help:    "Number of each counted delivery attempt (1 = first try); not-counted attempts are left out.",
			Buckets: prometheus.LinearBuckets(1, 1, 10),
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    DeliveryDuration,
			Help:    "Time a counted delivery attempt's HTTP exchange with the Catering backend took.",
			Buckets: prometheus.DefBuckets,
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    EndToEnd,
			Help:    "Time from the ingress accepting a registration to its delivery, retries and pauses included.",
			Buckets: endToEndBuckets,
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DeadLetters,
			Help: "Messages the forwarder moved to the dead-letter queue, by reason: max-attempts, non-retryable, invalid-message.",
		}, []string{"reason"}),
		circuitState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: CircuitState,
			Help: "Circuit breaker state: 0 closed (delivering), 1 open (paused), 2 half-open (probing).",
		}),
		circuitTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CircuitTransitions,
			Help: "Circuit breaker state changes, by the state changed to.",
		}, []string{"to"}),
		brokerConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: BrokerConnected,
			Help: "1 while the forwarder has a connection to RabbitMQ, else 0.",
		}),
		limitApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: QueueLimitApplied,
			Help: "1 when this forwarder applied the main queue's limit policy (QUEUE_MAX_LENGTH, QUEUE_MAX_BYTES) at its last connect, else 0: no limit set, RABBITMQ_MANAGEMENT_URL=off, or the management API failed (see the log).",
		}),
	}
	// Every label value from the start: rate() sees a 0 rather than no data,
	// and a dashboard's series do not appear only after the first event.
	m.outcomes = make(map[string]prometheus.Counter, len(forwarder.Outcomes))
	for _, o := range forwarder.Outcomes {
		m.outcomes[o] = m.deliveries.WithLabelValues(o)
	}
	m.resultsBy = make(map[string]prometheus.Counter, len(forwarder.Results))
	for _, r := range forwarder.Results {
		m.resultsBy[r] = m.results.WithLabelValues(r)
	}
	for _, r := range []string{envelope.ReasonMaxAttempts, envelope.ReasonNonRetryable, envelope.ReasonInvalidMessage} {
		m.deadLetters.WithLabelValues(r)
	}
	for _, s := range []breaker.State{breaker.Closed, breaker.Open, breaker.HalfOpen} {
		m.circuitTransitions.WithLabelValues(s.String())
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfo,
		Help:        "Always 1; its labels say which relay component runs, at which version, built with which Go.",
		ConstLabels: prometheus.Labels{"component": "forwarder", "version": Version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(buildInfo, m.deliveries, m.results, m.attempt, m.duration, m.endToEnd, m.deadLetters,
		m.circuitState, m.circuitTransitions, m.brokerConnected, m.limitApplied)
	m.reg.MustRegister(extra...)
	return m
}

// Handler serves the metrics (GET /metrics).
func (m *Metrics) Handler() http.Handler { return pkgmetrics.Handler(m.reg) }

// Gatherer returns the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Attempted implements forwarder.Observer.
func (m *Metrics) Attempted(number int, took time.Duration) {
	m.attempt.Observe(float64(number))
	m.duration.Observe(took.Seconds())
}

// Outcome implements forwarder.Observer.
func (m *Metrics) Outcome(outcome string) {
	if c, ok := m.outcomes[outcome]; ok {
		c.Inc()
		return
	}
	m.deliveries.WithLabelValues(outcome).Inc()
}

// Result implements forwarder.Observer.
func (m *Metrics) Result(result string) {
	if c, ok := m.resultsBy[result]; ok {
		c.Inc()
		return
	}
	m.results.WithLabelValues(result).Inc()
}

// Delivered implements forwarder.Observer.
func (m *Metrics) Delivered(age time.Duration) { m.endToEnd.Observe(age.Seconds()) }

// DeadLettered implements forwarder.Observer.
func (m *Metrics) DeadLettered(reason string) { m.deadLetters.WithLabelValues(reason).Inc() }

// CircuitChanged follows the breaker; it is breaker.Options.OnChange.
func (m *Metrics) CircuitChanged(s breaker.State) {
	m.circuitState.Set(float64(s))
	m.circuitTransitions.WithLabelValues(s.String()).Inc()
}

// BrokerConnected follows the broker connection; it is broker.Dialer.OnConnected.
func (m *Metrics) BrokerConnected(up bool) {
	if up {
		m.brokerConnected.Set(1)
		return
	}
	m.brokerConnected.Set(0)
}

// QueueLimitApplied reports whether the limit policy was applied.
func (m *Metrics) QueueLimitApplied(applied bool) {
	if applied {
		m.limitApplied.Set(1)
		return
	}
	m.limitApplied.Set(0)
}
