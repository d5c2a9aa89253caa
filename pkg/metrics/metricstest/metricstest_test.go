package metricstest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/railco/relay/pkg/metrics/metricstest"
)

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum(rate(relay_ingress_requests_total{outcome="accepted"}[$__rate_interval]))`, []string{"relay_ingress_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(relay_forwarder_delivery_duration_seconds_bucket[5m])))`,
			[]string{"relay_forwarder_delivery_duration_seconds_bucket"}},
		{`max by (queue) (relay_queue_messages{kind=~"retry|dead"}) or on() vector(0)`, []string{"relay_queue_messages"}},
		{`sum(rate(a_total[1m])) / sum(rate(b_total[1m] offset 1h)) * 1e3 > bool 0.5`, []string{"a_total", "b_total"}},
		{`sum(x) without (instance) and ignoring(job) y unless z`, []string{"x", "y", "z"}},
		{`label_values(relay_forwarder_broker_connected, instance)`, []string{"relay_forwarder_broker_connected"}},
		{`label_values(instance)`, nil},
		{`up{job="forwarder", instance="${instance}"}`, []string{"up"}},
		{`sum by (to) (increase(relay_forwarder_circuit_transitions_total{to="open"}[1h]))`, []string{"relay_forwarder_circuit_transitions_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := metricstest.MetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("MetricNames = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDashboardMetrics_WalksPanelsRowsAndVariables(t *testing.T) {
	dashboard := `{
	  "templating": {"list": [{"name": "instance", "query": {"query": "label_values(v_total, instance)"}}]},
	  "panels": [
	    {"type": "row", "panels": [{"targets": [{"expr": "rate(nested_total[5m])"}]}]},
	    {"targets": [{"expr": "histogram_quantile(0.5, rate(h_seconds_bucket[5m]))"}, {"expr": "rate(h_seconds_count[5m])"}]},
	    {"targets": [{"expr": "rate(other_count[5m])"}]}
	  ]
	}`
	path := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(path, []byte(dashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	histograms := func(name string) bool { return name == "h_seconds" }
	got := metricstest.DashboardMetrics(t, path, histograms)
	want := []string{"h_seconds", "nested_total", "other_count", "v_total"}
	if !slices.Equal(got, want) {
		t.Errorf("DashboardMetrics = %q, want %q", got, want)
	}
}

// fatalRecorder is a testing.TB whose Fatal* only record.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestLintQueries(t *testing.T) {
	good := []string{
		`sum by (outcome) (rate(relay_forwarder_deliveries_total[$__rate_interval]))`,
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[${__rate_interval}])))`,
		`sum by (to) (increase(y_total[$__range]))`,
	}
	metricstest.LintQueries(t, good)

	rec := &fatalRecorder{TB: t}
	metricstest.LintQueries(rec, append(good, `sum(rate(x_total[5m])`))
	if !strings.Contains(rec.msg, "promtool check rules") || !strings.Contains(rec.msg, "sum(rate(x_total[5m])") {
		t.Errorf("an unbalanced query passed, or the failure does not show it: %q", rec.msg)
	}
}

func TestDashboardQueries_SkipsVariablesThatAreNotPromQL(t *testing.T) {
	dashboard := `{
	  "templating": {"list": [
	    {"type": "datasource", "name": "datasource", "query": "prometheus"},
	    {"type": "custom", "name": "window", "query": "5m,1h"},
	    {"type": "query", "name": "namespace", "query": {"query": "label_values(relay_build_info, namespace)"}}
	  ]},
	  "panels": [{"datasource": {"type": "prometheus", "uid": "${datasource}"}, "targets": [{"expr": "up"}]}]
	}`
	path := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(path, []byte(dashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	got := metricstest.DashboardQueries(t, path)
	slices.Sort(got)
	want := []string{"label_values(relay_build_info, namespace)", "up"}
	if !slices.Equal(got, want) {
		t.Errorf("DashboardQueries = %q, want %q", got, want)
	}
}

func TestLintQueries_TemplateVariables(t *testing.T) {
	metricstest.LintQueries(t, []string{
		`label_values(relay_build_info{namespace=~"$namespace"}, job)`,
		`label_values(namespace)`,
	})
	rec := &fatalRecorder{TB: t}
	metricstest.LintQueries(rec, []string{`label_values(rate(x[5m], job)`})
	if rec.msg == "" {
		t.Error("a broken label_values query passed")
	}
}

// errorRecorder is a testing.TB whose Errorf only records.
type errorRecorder struct {
	testing.TB
	msgs []string
}

func (e *errorRecorder) Errorf(format string, args ...any) {
	e.msgs = append(e.msgs, fmt.Sprintf(format, args...))
}

func TestCheckDashboard_KnowsPrometheusAndRabbitMQMetrics(t *testing.T) {
	write := func(exprs ...string) string {
		var targets []string
		for _, e := range exprs {
			targets = append(targets, fmt.Sprintf(`{"expr": %q}`, e))
		}
		path := filepath.Join(t.TempDir(), "d.json")
		doc := `{"panels": [{"targets": [` + strings.Join(targets, ",") + `]}]}`
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	exported := []string{"relay_ingress_requests_total", "relay_build_info"}
	ok := write(
		`sum(rate(relay_ingress_requests_total[5m]))`,
		`count by (component, version) (relay_build_info)`,
		`sum(up{job=~"$job"})`,
		`ALERTS{alertstate="firing"}`,
		`max(rabbitmq_alarms_memory_used_watermark)`,
		`max by (queue) (rabbitmq_detailed_queue_messages_unacked{queue=~"$queue"})`,
	)
	rec := &errorRecorder{TB: t}
	metricstest.CheckDashboard(rec, ok, "ingress", exported, nil)
	if len(rec.msgs) > 0 {
		t.Errorf("CheckDashboard complained about known metrics: %q", rec.msgs)
	}

	bad := write(`sum(rate(relay_ingress_requests_total[5m]))`, `rabbitmq_queue_mesages_ready`)
	rec = &errorRecorder{TB: t}
	metricstest.CheckDashboard(rec, bad, "ingress", exported, nil)
	if len(rec.msgs) != 1 || !strings.Contains(rec.msgs[0], "rabbitmq_queue_mesages_ready") {
		t.Errorf("a misspelt RabbitMQ metric: got complaints %q, want one naming it", rec.msgs)
	}
}
