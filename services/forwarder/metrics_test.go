package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/services/forwarder/internal/metrics"
)

// adminURL waits until run wrote FORWARDER_ADMIN_ADDR_FILE and returns the admin server's URL.
func adminURL(t *testing.T, file string) string {
	t.Helper()
	var addr []byte
	brokertest.Eventually(t, 10*time.Second, "the admin address file", func() bool {
		addr, _ = os.ReadFile(file)
		return len(addr) > 0
	})
	return "http://" + string(addr)
}

func TestRun_ExportsMetrics(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	var delivered atomic.Int32
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		delivered.Add(1)
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer be.Close()
	env["CATERING_SERVICE_EP"] = be.URL + "/catering"
	env["FORWARDER_ADMIN_ADDR_FILE"] = filepath.Join(t.TempDir(), "admin")
	env["QUEUE_METRICS_INTERVAL"] = "1s"
	stop := startRun(t, env, io.Discard)
	url := adminURL(t, env["FORWARDER_ADMIN_ADDR_FILE"]) + "/metrics"
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "metrics-1", `{}`)

	// The counters move after the backend's answer, once the message is acked;
	// the consumer count after the next queue poll.
	var text string
	brokertest.Eventually(t, 10*time.Second, "one delivery and one consumer in /metrics", func() bool {
		text = metricstest.Scrape(t, url)
		fams := metricstest.Families(t, text)
		n, _ := metricstest.Value(t, fams, metrics.Deliveries, "outcome", "delivered")
		c, _ := metricstest.Value(t, fams, pkgmetrics.QueueConsumers, "queue", topo.Queue)
		return n == 1 && c == 1
	})
	metricstest.Lint(t, text)
	fams := metricstest.Families(t, text)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{metrics.Deliveries, []string{"outcome", "delivered"}, 1},
		{metrics.Deliveries, []string{"outcome", "retry"}, 0},
		{metrics.DeliveryAttempt, nil, 1}, // histograms: the sample count
		{metrics.DeliveryDuration, nil, 1},
		{metrics.EndToEnd, nil, 1},
		{metrics.DeadLetters, []string{"reason", "max-attempts"}, 0},
		{metrics.CircuitState, nil, 0},
		{metrics.BrokerConnected, nil, 1},
		{pkgmetrics.QueueMessages, []string{"queue", topo.Queue, "kind", pkgmetrics.KindMain}, 0},
		{pkgmetrics.QueueMessages, []string{"queue", topo.DeadQueue, "kind", pkgmetrics.KindDead}, 0},
		{pkgmetrics.QueueConsumers, []string{"queue", topo.Queue}, 1},
	}
	for _, tt := range tests {
		if got, ok := metricstest.Value(t, fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	for _, tier := range topo.Tiers() {
		if _, ok := metricstest.Value(t, fams, pkgmetrics.QueueMessages, "queue", tier.Queue, "kind", pkgmetrics.KindRetry); !ok {
			t.Errorf("no %s for retry tier %s", pkgmetrics.QueueMessages, tier.Queue)
		}
	}
	for _, name := range append(slices.Clone(metrics.Names), pkgmetrics.QueueMessages, pkgmetrics.QueueConsumers, "go_goroutines", "process_cpu_seconds_total") {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if n := delivered.Load(); n != 1 {
		t.Errorf("backend got %d deliveries, want 1", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// dashboard is the Grafana dashboard that deployments/grafana provisions.
const dashboard = "../../deployments/grafana/dashboards/relay.json"

// TestDashboard_QueriesOnlyExportedMetrics keeps the dashboard and the forwarder
// in step (the other service's module checks its own metrics).
func TestDashboard_QueriesOnlyExportedMetrics(t *testing.T) {
	exported := append(slices.Clone(metrics.Names), pkgmetrics.QueueMessages, pkgmetrics.QueueConsumers)
	metricstest.CheckDashboard(t, dashboard, "forwarder", exported, metrics.Histograms)
	// Every query must parse: a typo would show as "no data", silently.
	metricstest.LintQueries(t, metricstest.DashboardQueries(t, dashboard))
}
