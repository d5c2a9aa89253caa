// Package metricstest scrapes, lints and reads Prometheus metrics in tests,
// and reads and checks the queries of a Grafana dashboard.
//
// Lint and LintQueries run promtool, which a test needs for real: when it is
// missing the test fails, it never skips (apt-get install prometheus
// provides it).
package metricstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape GETs url (a /metrics endpoint) and returns the body, failing t
// unless the answer is 200 in the Prometheus text format.
func Scrape(t testing.TB, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape %s: %d %s, want 200 text/plain; body:\n%s", url, res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	return string(body)
}

// Lint runs `promtool check metrics` on an exposition and fails t with its
// complaints (names, units, help texts, histogram consistency).
func Lint(t testing.TB, exposition string) {
	t.Helper()
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// promtool returns promtool's path, failing t when it is not installed.
func promtool(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed; the metrics and the dashboard's queries must pass its checks: " +
			"install it (Debian: apt-get install -y prometheus)")
	}
	return path
}

// Families parses an exposition in the text format.
func Families(t testing.TB, exposition string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, exposition)
	}
	return fams
}

// Value returns the value of the sample of family name whose labels include
// labels (name=value pairs), and whether there is one. A histogram's value
// is its sample count.
func Value(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("Value(%s): labels must be name=value pairs, got %q", name, labels)
	}
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			if !hasLabel(m, labels[i], labels[i+1]) {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// Names returns the sorted names of the families in fams.
func Names(fams map[string]*dto.MetricFamily) []string {
	names := make([]string, 0, len(fams))
	for name := range fams {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Gathered returns the sorted names of the families g gathers.
func Gathered(t testing.TB, g interface {
	Gather() ([]*dto.MetricFamily, error)
}) []string {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	names := make([]string, 0, len(fams))
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	slices.Sort(names)
	return names
}

// DashboardQueries returns the PromQL queries of a Grafana dashboard JSON
// file: panel targets (rows and nested panels included) and template
// variable queries.
func DashboardQueries(t testing.TB, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read dashboard: %v", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("dashboard %s is not JSON: %v", path, err)
	}
	var exprs []string
	collectExprs(doc, &exprs)
	if len(exprs) == 0 {
		t.Fatalf("dashboard %s has no queries", path)
	}
	return exprs
}

// DashboardMetrics returns the sorted, distinct metric names that the
// queries of a Grafana dashboard JSON file use. A histogram's _bucket, _sum
// and _count series are reported under the histogram's name when histogram
// says that is one.
func DashboardMetrics(t testing.TB, path string, histogram func(name string) bool) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range DashboardQueries(t, path) {
		for _, name := range MetricNames(e) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && histogram(base) {
					name = base
					break
				}
			}
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// grafanaIntervals are the interval variables Grafana fills in before a
// query reaches Prometheus.
var grafanaIntervals = regexp.MustCompile(`\$__(?:rate_interval|interval|range)\b|\$\{__(?:rate_interval|interval|range)\}`)

// labelValuesOnly matches a template variable's whole query
// label_values(metric{...}, label), capturing the selector, or
// label_values(label), capturing "".
var labelValuesOnly = regexp.MustCompile(`^\s*label_values\(\s*(?:([^,]*?)\s*,)?\s*\w+\s*\)\s*$`)

// LintQueries has promtool parse every query (as a recording rule), with
// Grafana's interval variables replaced by 5m, and fails t on syntax errors.
func LintQueries(t testing.TB, queries []string) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, q := range queries {
		// Grafana's label_values(metric, label) selects metric; the
		// selector is what Prometheus parses. label_values(label) has none.
		if m := labelValuesOnly.FindStringSubmatch(q); m != nil {
			if m[1] == "" {
				continue
			}
			q = m[1]
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i+1), Expr: grafanaIntervals.ReplaceAllString(q, "5m")})
	}
	if len(rules) == 0 {
		return
	}
	file := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	raw, err := json.Marshal(file) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t), "check", "rules", path).CombinedOutput()
	if err != nil {
		var list strings.Builder
		for _, r := range rules {
			fmt.Fprintf(&list, "%s: %s\n", r.Record, r.Expr)
		}
		t.Fatalf("promtool check rules: %v\n%s\nqueries:\n%s", err, out, list.String())
	}
}

// notPromQL are the types of template variables whose "query" is not PromQL:
// a datasource variable's is a plugin type ("prometheus"), a custom one's a
// list of values.
var notPromQL = map[string]bool{"datasource": true, "custom": true, "interval": true, "constant": true, "textbox": true, "adhoc": true}

// collectExprs walks a decoded dashboard and appends every "expr" string and
// every string "query" (template variables; Grafana 9+ may nest it as
// {"query": "..."}), skipping variables whose query is not PromQL.
func collectExprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		if typ, ok := v["type"].(string); ok && notPromQL[typ] {
			return
		}
		for k, child := range v {
			if s, ok := child.(string); ok && (k == "expr" || k == "query") && s != "" {
				*out = append(*out, s)
				continue
			}
			collectExprs(child, out)
		}
	case []any:
		for _, child := range v {
			collectExprs(child, out)
		}
	}
}

var (
	quoted      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	labelValues = regexp.MustCompile(`label_values\(\s*([^,()]*?)\s*(?:,[^()]*)?\)`)
	matchers    = regexp.MustCompile(`\{[^}]*\}`)
	ranges      = regexp.MustCompile(`\[[^\]]*\]`)
	variables   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	grouping    = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident       = regexp.MustCompile(`[a-zA-Z_:][\w:]*`)
	// keywords are PromQL words that are not metric names.
	keywords = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true,
	}
)

// MetricNames returns the metric names a PromQL expression selects, in order
// of appearance, with duplicates. Grafana's label_values(metric, label)
// selects metric; label_values(label) selects none.
func MetricNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = labelValues.ReplaceAllStringFunc(e, func(call string) string {
		if !strings.Contains(call, ",") {
			return " " // label_values(label) names a label, not a metric
		}
		return " " + labelValues.FindStringSubmatch(call)[1] + " "
	})
	e = variables.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range ident.FindAllStringIndex(e, -1) {
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.") {
			continue // inside a number (1e3) or a duration (5m)
		}
		name := e[loc[0]:loc[1]]
		if strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(") || keywords[name] {
			continue // a function or aggregation, or a keyword
		}
		names = append(names, name)
	}
	return names
}

// Services are the relay services whose metrics carry their name:
// relay_<service>_*.
var Services = []string{"ingress", "forwarder"}

// Prometheus are the series Prometheus makes itself: up for every target,
// ALERTS for every pending or firing alert.
var Prometheus = []string{"up", "ALERTS"}

// RabbitMQ are the metrics of RabbitMQ's own Prometheus plugin
// (rabbitmq_prometheus, port 15692) that a dashboard may query: /metrics for
// the node's, /metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count
// for the per-queue rabbitmq_detailed_* ones. They are the broker's, not
// relay's, so no service's code can vouch for them: this list does. The
// deployments module's TestDashboard_RabbitMQMetricsExistOnABroker checks the
// dashboard's against the test broker (RabbitMQ 3.10 in CI).
var RabbitMQ = []string{
	"rabbitmq_alarms_file_descriptor_limit",
	"rabbitmq_alarms_free_disk_space_watermark",
	"rabbitmq_alarms_memory_used_watermark",
	"rabbitmq_build_info",
	"rabbitmq_channels",
	"rabbitmq_connections",
	"rabbitmq_detailed_queue_consumers",
	"rabbitmq_detailed_queue_messages",
	"rabbitmq_detailed_queue_messages_ready",
	"rabbitmq_detailed_queue_messages_unacked",
	"rabbitmq_disk_space_available_bytes",
	"rabbitmq_disk_space_available_limit_bytes",
	"rabbitmq_global_messages_acknowledged_total",
	"rabbitmq_global_messages_confirmed_total",
	"rabbitmq_global_messages_dead_lettered_delivery_limit_total",
	"rabbitmq_global_messages_delivered_total",
	"rabbitmq_global_messages_received_total",
	"rabbitmq_identity_info",
	"rabbitmq_process_resident_memory_bytes",
	"rabbitmq_resident_memory_limit_bytes",
}

// CheckDashboard keeps the dashboard at path and one service's code in step:
// every relay_<service>_* and relay_queue_* metric a panel queries must be in
// exported (histograms names the histogram families among them), and every
// other metric it queries must be exported by some relay service, or be
// Prometheus's own or RabbitMQ's (the lists above). Each service's module
// runs it for itself.
func CheckDashboard(t testing.TB, path, service string, exported, histograms []string) {
	t.Helper()
	own, queues := "relay_"+service+"_", "relay_queue_"
	used := 0
	for _, name := range DashboardMetrics(t, path, func(n string) bool { return slices.Contains(histograms, n) }) {
		switch {
		case strings.HasPrefix(name, own), strings.HasPrefix(name, queues):
			used++
			if !slices.Contains(exported, name) {
				t.Errorf("the dashboard queries %s, which the %s does not export (it exports %q)", name, service, exported)
			}
		case slices.Contains(exported, name): // shared by the services: relay_build_info
		case slices.Contains(Prometheus, name), slices.Contains(RabbitMQ, name), ofOtherService(name, service):
		default:
			t.Errorf("the dashboard queries %s, which neither a relay service, nor Prometheus, nor RabbitMQ (metricstest.RabbitMQ) exports", name)
		}
	}
	if used == 0 {
		t.Errorf("the dashboard shows no %s or queue metric", service)
	}
}

func ofOtherService(name, service string) bool {
	for _, s := range Services {
		if s != service && strings.HasPrefix(name, "relay_"+s+"_") {
			return true
		}
	}
	return false
}
