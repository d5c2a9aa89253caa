package deployments

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The alerting rules: one file, prometheus/relay-rules.yml, that compose's
// Prometheus loads and that the Prometheus Operator gets as a PrometheusRule
// generated from it; its promtool unit tests in relay-rules.test.yml.

var update = flag.Bool("update", false, "rewrite kubernetes/prometheus-operator/prometheusrule.yaml from prometheus/relay-rules.yml")

const (
	rulesFile      = "prometheus/relay-rules.yml"
	rulesTestFile  = "prometheus/relay-rules.test.yml"
	prometheusFile = "prometheus/prometheus.yml"
	operatorDir    = manifestDir + "/prometheus-operator"
	prometheusRule = operatorDir + "/prometheusrule.yaml"
)

// promtool returns promtool's path. The rules must pass its checks, so a
// machine without it fails rather than skips (Debian: apt-get install -y prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (apt-get install -y prometheus): the alerting rules cannot be checked")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return rules
}

func TestAlertRules_PassPromtool(t *testing.T) {
	t.Log(runPromtool(t, "prometheus", "check", "rules", filepath.Base(rulesFile)))
	t.Log(runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestFile)))
}

// Every alert has a case in relay-rules.test.yml where it fires and one where
// it must not: an alert nobody saw fire may never fire, one nobody saw stay
// quiet may page all night.
func TestAlertRules_EveryAlertTestedFiringAndQuiet(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name          string `yaml:"name"`
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Contains(tests.RuleFiles, filepath.Base(rulesFile)) {
		t.Errorf("%s does not test %s (rule_files: %v)", rulesTestFile, filepath.Base(rulesFile), tests.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts[r.Alert] = true
		if !fires[r.Alert] {
			t.Errorf("%s: no test expects it to fire", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no test expects it to stay quiet (exp_alerts: [])", r.Alert)
		}
	}
	for name := range fires {
		if !alerts[name] {
			t.Errorf("%s tests alert %s, which %s does not define", rulesTestFile, name, rulesFile)
		}
	}
}

// severities are the values of the severity label, which Alertmanager
// routes on.
var severities = []string{"warning", "critical"}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Each alert says how bad it is, what happened, what to do, and where to read
// more: a section of the README that exists.
func TestAlertRules_SeverityAndAnnotations(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[githubAnchor(strings.TrimLeft(h, "#"))] = true
		}
	}
	const readmeURL = "https://github.com/railco/relay/blob/main/README.md#"
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !strings.HasPrefix(r.Alert, "Relay") {
			t.Errorf("%s: alert names start with Relay (the dashboard lists ALERTS{alertname=~\"Relay.+\"})", r.Alert)
		}
		if !slices.Contains(severities, r.Labels["severity"]) {
			t.Errorf("%s: severity %q, want one of %v", r.Alert, r.Labels["severity"], severities)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], readmeURL)
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q is not %s<a heading of README.md> (headings: %v)", r.Alert, r.Annotations["runbook_url"], readmeURL, slices.Sorted(maps.Keys(anchors)))
		}
	}
}

var (
	promQuoted    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	relayMetric   = regexp.MustCompile(`\brelay_[a-z_]+\b`)
	goMetricConst = regexp.MustCompile(`"(relay_[a-z_]+)"`)
	jobMatcher    = regexp.MustCompile(`\bjob\s*(?:=|!=|=~|!~)\s*"([^"]*)"`)
)

// exportedRelayMetrics returns the relay_* names the services' metrics code
// defines, scanned from its string literals.
func exportedRelayMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var files []string
	for _, pattern := range []string{"services/*/internal/metrics/*.go", "pkg/metrics/*.go"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goMetricConst.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
	}
	if len(names) == 0 {
		t.Fatal("found no relay_* metric names in services/*/internal/metrics and pkg/metrics: have they moved?")
	}
	return names
}

// A rule that asks for a metric nobody exports never fires: every relay_*
// name in an expression must be one the services define. Histogram series
// (_bucket, _sum, _count) count as their histogram.
func TestAlertRules_QueryMetricsTheServicesExport(t *testing.T) {
	exported := exportedRelayMetrics(t)
	for _, r := range loadRules(t) {
		for _, name := range relayMetric.FindAllString(promQuoted.ReplaceAllString(r.Expr, `""`), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !exported[name] && !exported[base] {
				t.Errorf("%s queries %s, which no relay service exports", r.Alert+r.Record, name)
			}
		}
	}
}

// Job names depend on who scrapes relay (compose's jobs, a ServiceMonitor's
// jobLabel, an annotation-based kubernetes-pods job): the rules name none.
func TestAlertRules_NameNoJob(t *testing.T) {
	for _, r := range loadRules(t) {
		if m := jobMatcher.FindStringSubmatch(r.Expr); m != nil {
			t.Errorf("%s matches job %q: job names differ between Prometheus setups", r.Alert+r.Record, m[1])
		}
	}
}

// renderPrometheusRule is the PrometheusRule manifest for rules, the content
// of relay-rules.yml: its groups, comments included, under spec.
func renderPrometheusRule(t *testing.T, rules []byte) []byte {
	t.Helper()
	i := bytes.Index(rules, []byte("\ngroups:\n"))
	if i < 0 {
		t.Fatalf("%s: no top-level groups:", rulesFile)
	}
	var b bytes.Buffer
	b.WriteString(`# GENERATED from deployments/prometheus/relay-rules.yml: edit that file, then
#   cd deployments && go test -run TestPrometheusRule -update
# (go test fails while the two differ).
#
# relay's alerts for the Prometheus Operator. Its Prometheus loads the
# PrometheusRules its ruleSelector and ruleNamespaceSelector pick (often by a
# label such as release: <helm release> or role: alert-rules): add that
# label in your overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: relay
  # A component is not touched by the base's namespace and labels: they are
  # spelled out.
  namespace: relay
  labels:
    app.kubernetes.io/part-of: relay
spec:
`)
	for line := range strings.SplitSeq(strings.TrimSuffix(string(rules[i+1:]), "\n"), "\n") {
		if line != "" {
			b.WriteString("  " + line)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func TestPrometheusRule_IsTheRulesFile(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := renderPrometheusRule(t, rules)
	if *update {
		if err := os.WriteFile(prometheusRule, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not %s's rules: run `go test -run TestPrometheusRule -update` in deployments", prometheusRule, rulesFile)
	}
	// And it parses into the same rules.
	var pr struct {
		Kind     string     `yaml:"kind"`
		Metadata objectMeta `yaml:"metadata"`
		Spec     ruleFile   `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRule, err)
	}
	var file ruleFile
	if err := yaml.Unmarshal(rules, &file); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || fmt.Sprint(pr.Spec) != fmt.Sprint(file) {
		t.Errorf("%s: a %s whose spec differs from %s", prometheusRule, pr.Kind, rulesFile)
	}
	if ns := load(t).kust.Namespace; pr.Metadata.Namespace != ns {
		t.Errorf("PrometheusRule in namespace %q, want the base's %q", pr.Metadata.Namespace, ns)
	}
}

// scrapeConfig is the part of a Prometheus scrape config the tests read.
type scrapeConfig struct {
	JobName       string              `yaml:"job_name"`
	MetricsPath   string              `yaml:"metrics_path"`
	Params        map[string][]string `yaml:"params"`
	StaticConfigs []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
}

func loadPrometheusConfig(t *testing.T) (ruleFiles []string, scrapes []scrapeConfig) {
	t.Helper()
	b, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string       `yaml:"rule_files"`
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	return cfg.RuleFiles, cfg.ScrapeConfigs
}

// rabbitmqScrapes are compose's scrapes of RabbitMQ's Prometheus port.
func rabbitmqScrapes(t *testing.T) []scrapeConfig {
	t.Helper()
	_, scrapes := loadPrometheusConfig(t)
	var out []scrapeConfig
	for _, sc := range scrapes {
		for _, s := range sc.StaticConfigs {
			if slices.Contains(s.Targets, "rabbitmq:15692") {
				out = append(out, sc)
			}
		}
	}
	return out
}

// Compose's Prometheus loads the rules (the file mounted where rule_files
// points), passes promtool check config, and scrapes RabbitMQ's own metrics:
// the node's and the per-queue ones the dashboard shows.
func TestPrometheusConfig_LoadsTheRulesAndScrapesRabbitMQ(t *testing.T) {
	t.Log(runPromtool(t, "prometheus", "check", "config", filepath.Base(prometheusFile)))
	ruleFiles, _ := loadPrometheusConfig(t)
	if !slices.Contains(ruleFiles, filepath.Base(rulesFile)) {
		t.Errorf("%s: rule_files %v does not load %s", prometheusFile, ruleFiles, filepath.Base(rulesFile))
	}
	c := composeConfig(t, nil)
	mounts := map[string]string{} // container path → file under deployments/
	var configDir string
	for _, v := range c.Services["prometheus"].Volumes {
		m := parseVolume(t, v)
		rel, err := filepath.Rel(mustAbs(t, "."), m.source)
		if err != nil {
			continue
		}
		mounts[m.target] = filepath.ToSlash(rel)
		if filepath.ToSlash(rel) == prometheusFile {
			configDir = path.Dir(m.target)
		}
	}
	if configDir == "" {
		t.Fatalf("compose's prometheus does not mount %s (mounts: %v)", prometheusFile, mounts)
	}
	for _, rf := range ruleFiles {
		in := rf
		if !path.IsAbs(in) {
			in = path.Join(configDir, rf) // Prometheus resolves it against the config file's directory
		}
		if got := mounts[in]; got != path.Join(path.Dir(prometheusFile), rf) {
			t.Errorf("rule_files names %s (%s in the container), where compose mounts %q", rf, in, got)
		}
	}
	paths := map[string]bool{}
	for _, sc := range rabbitmqScrapes(t) {
		p := sc.MetricsPath
		if p == "" {
			p = "/metrics"
		}
		paths[p] = true
		if p == "/metrics/detailed" && len(sc.Params["family"]) == 0 {
			t.Errorf("job %s scrapes /metrics/detailed without family params: RabbitMQ returns nothing", sc.JobName)
		}
	}
	for _, p := range []string{"/metrics", "/metrics/detailed"} {
		if !paths[p] {
			t.Errorf("%s does not scrape rabbitmq:15692%s", prometheusFile, p)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// The prometheus-operator component ships the PrometheusRule and a
// ServiceMonitor for the broker that scrapes what compose scrapes.
func TestPrometheusOperatorComponent_ShipsTheRulesAndScrapesRabbitMQ(t *testing.T) {
	m := load(t)
	b, err := os.ReadFile(filepath.Join(operatorDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var comp struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &comp); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(comp.Resources, filepath.Base(prometheusRule)) {
		t.Errorf("the component does not list %s", filepath.Base(prometheusRule))
	}
	entries, err := os.ReadDir(operatorDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "kustomization.yaml" && strings.HasSuffix(e.Name(), ".yaml") && !slices.Contains(comp.Resources, e.Name()) {
			t.Errorf("%s is not in the component's resources", e.Name())
		}
	}
	if len(m.rabbitmqClusters) != 1 {
		t.Fatalf("want one RabbitmqCluster, found %d", len(m.rabbitmqClusters))
	}
	cluster := m.rabbitmqClusters[0].Metadata.Name
	var found bool
	for _, r := range comp.Resources {
		f, err := os.Open(filepath.Join(operatorDir, r))
		if err != nil {
			t.Fatal(err)
		}
		objects := decodeObjects(t, r, f)
		f.Close()
		for _, o := range objects {
			if o.Kind != "ServiceMonitor" {
				continue
			}
			var sm struct {
				Metadata objectMeta `yaml:"metadata"`
				Spec     struct {
					Selector  labelSelector `yaml:"selector"`
					Endpoints []struct {
						Port        string              `yaml:"port"`
						Path        string              `yaml:"path"`
						Params      map[string][]string `yaml:"params"`
						Relabelings []struct {
							TargetLabel string `yaml:"targetLabel"`
						} `yaml:"relabelings"`
					} `yaml:"endpoints"`
				} `yaml:"spec"`
			}
			o.decode(t, &sm)
			if sm.Spec.Selector.MatchLabels[operatorPodLabel] != cluster {
				continue
			}
			found = true
			if sm.Metadata.Namespace != m.kust.Namespace {
				t.Errorf("ServiceMonitor %s in namespace %q, want %q beside the broker's Service", sm.Metadata.Name, sm.Metadata.Namespace, m.kust.Namespace)
			}
			paths := map[string]bool{}
			for i, ep := range sm.Spec.Endpoints {
				if ep.Port != "prometheus" {
					t.Errorf("ServiceMonitor %s scrapes port %q; the operator names 15692 \"prometheus\"", sm.Metadata.Name, ep.Port)
				}
				paths[ep.Path] = true
				if ep.Path == "/metrics/detailed" {
					for _, sc := range rabbitmqScrapes(t) {
						if sc.MetricsPath == ep.Path && !slices.Equal(sc.Params["family"], ep.Params["family"]) {
							t.Errorf("ServiceMonitor %s asks for families %v, compose's Prometheus for %v: the dashboard expects the same", sm.Metadata.Name, ep.Params["family"], sc.Params["family"])
						}
					}
				}
				// Two endpoints on one port: only their job keeps up{} apart.
				if i > 0 && !slices.ContainsFunc(ep.Relabelings, func(r struct {
					TargetLabel string `yaml:"targetLabel"`
				}) bool {
					return r.TargetLabel == "job"
				}) {
					t.Errorf("ServiceMonitor %s: endpoint %s has no job of its own; its up{} collides with the first endpoint's", sm.Metadata.Name, ep.Path)
				}
			}
			for _, p := range []string{"/metrics", "/metrics/detailed"} {
				if !paths[p] {
					t.Errorf("ServiceMonitor %s does not scrape %s", sm.Metadata.Name, p)
				}
			}
		}
	}
	if !found {
		t.Errorf("no ServiceMonitor of the component selects %s=%s, the broker's Services", operatorPodLabel, cluster)
	}
}
