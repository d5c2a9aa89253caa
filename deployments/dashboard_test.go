package deployments

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Grafana dashboard must work on any Prometheus that scrapes relay, not
// only compose's: its data source is a variable, it names no job, and every
// query keeps to the chosen namespace. (Each service's module checks that
// the relay metrics it queries exist: metricstest.CheckDashboard.)

const dashboardFile = "grafana/dashboards/relay.json"

type dashboard struct {
	Templating struct {
		List []struct {
			Type       string         `json:"type"`
			Name       string         `json:"name"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string         `json:"expr"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	return d, all
}

// exprs returns every panel query, with where it is.
func exprs(panels []panel) map[string]string {
	out := map[string]string{}
	for _, p := range panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %q, query %d", p.Title, i+1)] = tg.Expr
		}
	}
	return out
}

func TestDashboard_DataSourceIsAVariable(t *testing.T) {
	d, panels := loadDashboard(t)
	var dsVar string
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("no template variable of type datasource for Prometheus: the dashboard would need a data source with a fixed uid")
	}
	want := map[string]bool{"${" + dsVar + "}": true, "$" + dsVar: true}
	check := func(where string, ds map[string]any) {
		if ds == nil {
			return // inherits the panel's
		}
		if uid, _ := ds["uid"].(string); !want[uid] {
			t.Errorf("%s: data source uid %q, want ${%s}", where, uid, dsVar)
		}
	}
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil {
			t.Errorf("panel %q has no data source", p.Title)
		}
		check(fmt.Sprintf("panel %q", p.Title), p.Datasource)
		for i, tg := range p.Targets {
			check(fmt.Sprintf("panel %q, query %d", p.Title, i+1), tg.Datasource)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			check("variable "+v.Name, v.Datasource)
		}
	}
}

// Every variable a query uses exists (an unknown one stays in the query as
// text, and the panel shows nothing).
func TestDashboard_QueriesUseDefinedVariables(t *testing.T) {
	d, panels := loadDashboard(t)
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	variable := regexp.MustCompile(`\$\{?(\w+)`)
	for where, e := range exprs(panels) {
		for _, m := range variable.FindAllStringSubmatch(e, -1) {
			if !strings.HasPrefix(m[1], "__") && !defined[m[1]] {
				t.Errorf("%s uses $%s, which is not a variable of the dashboard: %s", where, m[1], e)
			}
		}
	}
}

// Job names are whatever scrapes relay (compose's jobs, a ServiceMonitor's
// jobLabel, a kubernetes-pods job): a job matcher must take a variable.
func TestDashboard_NamesNoJob(t *testing.T) {
	_, panels := loadDashboard(t)
	for where, e := range exprs(panels) {
		for _, m := range jobMatcher.FindAllStringSubmatch(e, -1) {
			if !strings.HasPrefix(m[1], "$") {
				t.Errorf("%s matches job %q; use the job variable: %s", where, m[1], e)
			}
		}
	}
}

var (
	// dashboardMetric is a metric name the dashboard selects: relay's,
	// RabbitMQ's or Prometheus's own.
	dashboardMetric = regexp.MustCompile(`\b(?:relay_\w+|rabbitmq_\w+|up|ALERTS)\b`)
	// promGrouping is a clause that lists label names, not metrics.
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
)

// blank replaces what re matches in s with as many underscores, so that
// positions in the result are positions in s.
func blank(re *regexp.Regexp, s string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat("_", len(m)) })
}

// In a cluster with two relays (say staging and production namespaces), each
// panel shows the chosen one: every selector matches namespace=~"$namespace"
// (on compose, with no namespace label, All is .*, which matches).
func TestDashboard_EverySelectorKeepsToTheNamespace(t *testing.T) {
	_, panels := loadDashboard(t)
	const matcher = `namespace=~"$namespace"`
	for where, e := range exprs(panels) {
		bare := blank(promGrouping, blank(promQuoted, e))
		for _, loc := range dashboardMetric.FindAllStringIndex(bare, -1) {
			rest := e[loc[1]:]
			end := strings.Index(rest, "}")
			if !strings.HasPrefix(rest, "{") || end < 0 || !strings.Contains(rest[:end], matcher) {
				t.Errorf("%s: %s is selected without %s: %s", where, e[loc[0]:loc[1]], matcher, e)
			}
		}
	}
}

func TestDashboard_PanelsHaveUniqueIDsAndDoNotOverlap(t *testing.T) {
	_, panels := loadDashboard(t)
	ids := map[int]string{}
	for _, p := range panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
	}
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q %+v and %q %+v overlap", a.Title, ga, b.Title, gb)
			}
		}
	}
}

// The RabbitMQ panels query the broker's own metrics, which relay's code
// cannot vouch for: this asks the test broker's rabbitmq_prometheus plugin
// (scripts/broker.sh enables it), at RABBITMQ_PROMETHEUS_URL, by default
// port 15692 of AMQP_URL's host. Like every test that needs the broker, it
// fails without one (-short skips it). It scrapes the paths and params of
// prometheus.yml's jobs for rabbitmq:15692, as compose's Prometheus does,
// and wants every rabbitmq_* name of the dashboard among what they return.
// withQueue declares a queue of the test's own through the management API
// (port 15672 of AMQP_URL's host, with its user) and deletes it at the end:
// the per-queue metrics exist only while some queue does, and the test must
// not depend on what else runs on the broker.
func withQueue(t *testing.T, client *http.Client) {
	t.Helper()
	u, err := url.Parse(os.Getenv("AMQP_URL"))
	if err != nil || u.Hostname() == "" {
		u, _ = url.Parse("amqp://guest:guest@127.0.0.1:5672/")
	}
	user, pass := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			pass = p
		}
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	q := fmt.Sprintf("http://%s/api/queues/%s/relay-dashboard-test-%d", net.JoinHostPort(u.Hostname(), "15672"), url.PathEscape(vhost), time.Now().UnixNano())
	do := func(method, body string) {
		req, _ := http.NewRequest(method, q, strings.NewReader(body))
		req.SetBasicAuth(user, pass)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (scripts/broker.sh enables the management plugin)", method, q, err)
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %s", method, q, res.Status)
		}
	}
	do(http.MethodPut, `{"durable":false,"auto_delete":false}`)
	t.Cleanup(func() { do(http.MethodDelete, "") })
}

func TestDashboard_RabbitMQMetricsExistOnABroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a broker with rabbitmq_prometheus; run without -short")
	}
	base := os.Getenv("RABBITMQ_PROMETHEUS_URL")
	if base == "" {
		host := "127.0.0.1"
		if u, err := url.Parse(os.Getenv("AMQP_URL")); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		base = "http://" + net.JoinHostPort(host, "15692")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	withQueue(t, client)
	if res, err := client.Get(base + "/metrics"); err != nil {
		t.Fatalf("no RabbitMQ Prometheus endpoint at %s (%v): rabbitmq-plugins enable rabbitmq_prometheus (scripts/broker.sh does for a local broker), or set RABBITMQ_PROMETHEUS_URL", base, err)
	} else {
		res.Body.Close()
	}
	exported := map[string]bool{}
	for _, sc := range rabbitmqScrapes(t) {
		p := sc.MetricsPath
		if p == "" {
			p = "/metrics"
		}
		u := base + p
		if len(sc.Params) > 0 {
			u += "?" + url.Values(sc.Params).Encode()
		}
		res, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", u, res.StatusCode, err)
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			exported[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	_, panels := loadDashboard(t)
	used := 0
	for where, e := range exprs(panels) {
		for _, name := range regexp.MustCompile(`\brabbitmq_\w+`).FindAllString(blank(promGrouping, blank(promQuoted, e)), -1) {
			used++
			if !exported[name] {
				t.Errorf("%s queries %s, which the broker at %s does not export on the paths prometheus.yml scrapes", where, name, base)
			}
		}
	}
	if used == 0 {
		t.Error("the dashboard shows no RabbitMQ metric")
	}
}

// The RabbitMQ row lists its queues from relay's own queue metrics: the
// dashboard's variables must select relay's series with the same labels.
func TestDashboard_VariablesComeFromRelayMetrics(t *testing.T) {
	d, _ := loadDashboard(t)
	exported := exportedRelayMetrics(t)
	var names []string
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		for _, name := range relayMetric.FindAllString(q, -1) {
			if !exported[name] {
				t.Errorf("variable %s queries %s, which no relay service exports", v.Name, name)
			}
		}
	}
	for _, want := range []string{"datasource", "namespace", "job"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s variable (variables: %v)", want, names)
		}
	}
}
