package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/railco/relay/pkg/brokertest"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/metrics"
)

func TestRun_ExportsMetrics(t *testing.T) {
	env, tcfg := baseEnv(t)
	env["QUEUE_METRICS_INTERVAL"] = "1s"
	in := start(t, env)
	in.waitReady(t)
	queue := topology.New(tcfg).Queue

	for range 2 {
		if res := do(t, http.MethodPost, in.url+"/catering/register", "application/json", seedBody(t)); res.status != http.StatusAccepted {
			t.Fatalf("POST seed: %d %v, want 202", res.status, res.body)
		}
	}
	if res := do(t, http.MethodPost, in.url+"/catering/register", "application/json", []byte(`{"passengerId":`)); res.status != http.StatusBadRequest {
		t.Fatalf("POST malformed: %d %v, want 400", res.status, res.body)
	}

	// The queue depth comes from a poll: wait for one that saw both messages.
	var text string
	brokertest.Eventually(t, deadline, "the main queue's depth of 2 in /metrics", func() bool {
		text = metricstest.Scrape(t, in.adminURL+"/metrics")
		n, _ := metricstest.Value(t, metricstest.Families(t, text), pkgmetrics.QueueMessages, "queue", queue)
		return n == 2
	})
	fams := metricstest.Families(t, text)
	metricstest.Lint(t, text)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{metrics.Requests, []string{"code", "202", "outcome", "accepted"}, 2},
		{metrics.Requests, []string{"code", "400", "outcome", "malformed_json"}, 1},
		{metrics.Requests, []string{"code", "503", "outcome", "not_stored"}, 0},
		{metrics.Requests, []string{"code", "200", "outcome", "ready"}, 1}, // waitReady's probe
		{metrics.RequestDuration, nil, 3},                                  // histograms: the sample count
		{metrics.PublishConfirm, nil, 2},
		{metrics.BrokerConnected, nil, 1},
		{metrics.BrokerBlocked, nil, 0},
		{metrics.ConnectionsShed, []string{"action", "refused"}, 0},
		{metrics.ConnectionsShed, []string{"action", "reclaimed"}, 0},
		{pkgmetrics.QueueMessages, []string{"queue", queue, "kind", pkgmetrics.KindMain}, 2},
		{pkgmetrics.QueueConsumers, []string{"queue", queue}, 0},
	}
	for _, tt := range tests {
		if got, ok := metricstest.Value(t, fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	for _, name := range append(slices.Clone(metrics.Names), pkgmetrics.QueueMessages, pkgmetrics.QueueConsumers, "go_goroutines", "process_cpu_seconds_total") {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
}

// dashboard is the Grafana dashboard that deployments/grafana provisions.
const dashboard = "../../deployments/grafana/dashboards/relay.json"

// TestDashboard_QueriesOnlyExportedMetrics keeps the dashboard and the ingress
// in step (the other service's module checks its own metrics).
func TestDashboard_QueriesOnlyExportedMetrics(t *testing.T) {
	exported := append(slices.Clone(metrics.Names), pkgmetrics.QueueMessages, pkgmetrics.QueueConsumers)
	metricstest.CheckDashboard(t, dashboard, "ingress", exported, metrics.Histograms)
}
