package metrics_test

import (
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
	"github.com/railco/relay/services/forwarder/internal/metrics"
)

var _ forwarder.Observer = (*metrics.Metrics)(nil)

// own drops the Go and process collectors' names.
func own(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool {
		return strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_")
	})
}

func TestNew_ExportsExactlyNames(t *testing.T) {
	m := metrics.New()
	got := own(metricstest.Gathered(t, m.Gatherer()))
	want := slices.Sorted(slices.Values(metrics.Names))
	if !slices.Equal(got, want) {
		t.Errorf("gathered %q, want metrics.Names %q", got, want)
	}
	for _, h := range metrics.Histograms {
		if !slices.Contains(metrics.Names, h) {
			t.Errorf("histogram %s is not in Names", h)
		}
	}
}

func TestMetrics_CountWhatTheyAreTold(t *testing.T) {
	m := metrics.New()
	m.Attempted(1, 20*time.Millisecond)
	m.Attempted(3, 2*time.Second)
	m.Outcome(forwarder.OutcomeRetry)
	m.Outcome(forwarder.OutcomeDelivered)
	m.Outcome(forwarder.OutcomeDelivered)
	m.Delivered(90 * time.Second)
	m.DeadLettered(envelope.ReasonMaxAttempts)
	m.CircuitChanged(breaker.Open)
	m.CircuitChanged(breaker.HalfOpen)
	m.BrokerConnected(true)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	text := metricstest.Scrape(t, srv.URL)
	metricstest.Lint(t, text)
	fams := metricstest.Families(t, text)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{metrics.Deliveries, []string{"outcome", "delivered"}, 2},
		{metrics.Deliveries, []string{"outcome", "retry"}, 1},
		{metrics.Deliveries, []string{"outcome", "not-counted"}, 0},
		{metrics.DeliveryAttempt, nil, 2},
		{metrics.DeliveryDuration, nil, 2},
		{metrics.EndToEnd, nil, 1},
		{metrics.DeadLetters, []string{"reason", "max-attempts"}, 1},
		{metrics.DeadLetters, []string{"reason", "non-retryable"}, 0},
		{metrics.CircuitState, nil, 2},
		{metrics.CircuitTransitions, []string{"to", "open"}, 1},
		{metrics.CircuitTransitions, []string{"to", "half-open"}, 1},
		{metrics.CircuitTransitions, []string{"to", "closed"}, 0},
		{metrics.BrokerConnected, nil, 1},
		{metrics.BuildInfo, []string{"component", "forwarder", "version", "dev"}, 1},
	}
	for _, tt := range tests {
		if got, ok := metricstest.Value(t, fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	// Attempt numbers land in their own buckets: le="1" holds the first try only.
	buckets := map[float64]uint64{}
	for _, b := range fams[metrics.DeliveryAttempt].GetMetric()[0].GetHistogram().GetBucket() {
		buckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if buckets[1] != 1 || buckets[2] != 1 || buckets[3] != 2 || buckets[10] != 2 {
		t.Errorf("attempt buckets %v, want le=1:1 le=2:1 le=3:2 le=10:2", buckets)
	}
}

func TestNew_BuildInfoCarriesVersionAndGo(t *testing.T) {
	defer func(v string) { metrics.Version = v }(metrics.Version)
	metrics.Version = "v1.2.3-4-gabcdef0"
	m := metrics.New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	fams := metricstest.Families(t, metricstest.Scrape(t, srv.URL))
	labels := []string{"component", "forwarder", "version", "v1.2.3-4-gabcdef0", "goversion", runtime.Version()}
	if got, ok := metricstest.Value(t, fams, metrics.BuildInfo, labels...); !ok || got != 1 {
		t.Errorf("%s%v = %v (present %v), want 1", metrics.BuildInfo, labels, got, ok)
	}
}
