package deployments

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Where things are, relative to this package's directory (go test's working
// directory).
const (
	manifestDir = "kubernetes"
	repoRoot    = ".."
)

// The names the RabbitMQ Cluster Operator derives from a RabbitmqCluster's
// name (rabbitmq/cluster-operator, internal/resource and internal/metadata):
// the client Service is called like the cluster, the credentials Secret is
// <name>-default-user, and the broker pods carry app.kubernetes.io/name=<name>.
const (
	operatorSecretSuffix = "-default-user"
	operatorPodLabel     = "app.kubernetes.io/name"
	amqpPort             = "5672"
)

// operatorSecretKeys are the keys of the operator's default-user Secret.
// connection_string exists in releases since rabbitmq/cluster-operator#1721.
var operatorSecretKeys = []string{"username", "password", "host", "port", "connection_string", "default_user.conf", "provider", "type"}

// externalSecrets are the Secrets the base refers to but does not define,
// with their keys: the deployer makes them (kubernetes/README.md shows how),
// because a secret committed here would be known to everyone who can read
// the repository. A pod that needs one does not start until it exists.
var externalSecrets = map[string][]string{
	"relay-ingress-api-keys": {"api-keys"},       // INGRESS_API_KEYS_FILE: name:key per line
	"relay-catering-signing": {"signing-secret"}, // CATERING_SIGNING_SECRET: whsec_…
	"relay-admin-token":      {"token"},          // INGRESS_ADMIN_TOKEN, FORWARDER_ADMIN_TOKEN (optional)
}

// goRuntimeEnv are variables the Go runtime reads, not the services' code.
var goRuntimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG", "GOTRACEBACK"}

// ---------------------------------------------------------------------------
// The tests

func TestKustomization_ListsExactlyTheManifestFiles(t *testing.T) {
	m := load(t)
	entries, err := os.ReadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	var present []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "kustomization.yaml" || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		present = append(present, name)
	}
	listed := slices.Clone(m.kust.Resources)
	for _, g := range m.kust.ConfigMapGenerator {
		listed = append(listed, g.Envs...)
		listed = append(listed, g.Files...)
	}
	for _, name := range listed {
		if _, err := os.Stat(filepath.Join(manifestDir, name)); err != nil {
			t.Errorf("kustomization.yaml lists %s, which does not exist", name)
		}
	}
	if dup := duplicates(m.kust.Resources); len(dup) > 0 {
		t.Errorf("kustomization.yaml lists %v more than once", dup)
	}
	for _, name := range present {
		if !slices.Contains(m.kust.Resources, name) {
			t.Errorf("%s is not in kustomization.yaml's resources: kubectl apply -k would ignore it", name)
		}
	}
	if m.kust.Namespace == "" {
		t.Error("kustomization.yaml sets no namespace")
	}
	if len(m.kust.CommonLabels) > 0 {
		t.Error("commonLabels also rewrites selectors, which are immutable once applied; use labels with includeSelectors: false")
	}
	for _, l := range m.kust.Labels {
		if l.IncludeSelectors {
			t.Errorf("labels %v has includeSelectors: true; selectors are immutable once applied", l.Pairs)
		}
	}
}

func TestManifests_AreWellFormed(t *testing.T) {
	m := load(t)
	seen := map[string]string{}
	var namespaces []string
	for _, o := range m.objects {
		id := o.id()
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: a document lacks apiVersion, kind or metadata.name (%s)", o.File, id)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("%s is defined twice: %s and %s", id, prev, o.File)
		}
		seen[id] = o.File
		if o.Kind == "Namespace" {
			namespaces = append(namespaces, o.Metadata.Name)
		}
		if ns := o.Metadata.Namespace; ns != "" && ns != m.kust.Namespace {
			t.Errorf("%s sets namespace %q; the kustomization's %q applies to everything", id, ns, m.kust.Namespace)
		}
	}
	if !slices.Contains(namespaces, m.kust.Namespace) {
		t.Errorf("no Namespace object %q, the kustomization's namespace", m.kust.Namespace)
	}
	for _, name := range []string{"ingress", "forwarder"} {
		if _, ok := m.deploymentRunning(name); !ok {
			t.Errorf("no Deployment runs a container named %q", name)
		}
	}
}

func TestDeployments_SelectorsMatchTheirPodTemplates(t *testing.T) {
	for _, d := range load(t).deployments {
		sel := d.Spec.Selector.MatchLabels
		if len(sel) == 0 || len(d.Spec.Selector.MatchExpressions) > 0 {
			t.Errorf("Deployment %s: want a non-empty selector.matchLabels only", d.Metadata.Name)
			continue
		}
		if !selects(sel, d.Spec.Template.Metadata.Labels) {
			t.Errorf("Deployment %s: selector %v does not match its pod labels %v", d.Metadata.Name, sel, d.Spec.Template.Metadata.Labels)
		}
		for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
			if !selects(c.LabelSelector.MatchLabels, d.Spec.Template.Metadata.Labels) {
				t.Errorf("Deployment %s: topologySpreadConstraints selector %v does not match its own pods", d.Metadata.Name, c.LabelSelector.MatchLabels)
			}
		}
	}
}

func TestServices_SelectADeploymentAndNameItsPorts(t *testing.T) {
	m := load(t)
	for _, s := range m.services {
		var matched []deployment
		for _, d := range m.deployments {
			if selects(s.Spec.Selector, d.Spec.Template.Metadata.Labels) {
				matched = append(matched, d)
			}
		}
		if len(matched) != 1 {
			t.Errorf("Service %s: selector %v matches %d Deployments, want 1", s.Metadata.Name, s.Spec.Selector, len(matched))
			continue
		}
		d := matched[0]
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.empty() {
				target = intOrString{Int: p.Port}
			}
			if _, ok := d.containerPort(target); !ok {
				t.Errorf("Service %s: port %q targets %s, which no container of Deployment %s declares", s.Metadata.Name, p.Name, target, d.Metadata.Name)
			}
		}
	}
	ingress, _ := m.deploymentRunning("ingress")
	if !slices.ContainsFunc(m.services, func(s service) bool { return selects(s.Spec.Selector, ingress.Spec.Template.Metadata.Labels) }) {
		t.Error("no Service sends traffic to the ingress pods")
	}
}

func TestProbes_ReadinessOnReadyzLivenessOnHealthz(t *testing.T) {
	for _, d := range load(t).deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range []struct {
				kind  string
				probe *probe
				path  string
			}{
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
				{"livenessProbe", c.LivenessProbe, "/healthz"},
			} {
				where := fmt.Sprintf("Deployment %s, container %s, %s", d.Metadata.Name, c.Name, p.kind)
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s: missing, or not an httpGet probe", where)
					continue
				}
				if got := p.probe.HTTPGet.Path; got != p.path {
					t.Errorf("%s: path %q, want %q", where, got, p.path)
				}
				if _, ok := c.port(p.probe.HTTPGet.Port); !ok {
					t.Errorf("%s: port %s is not one of the container's ports", where, p.probe.HTTPGet.Port)
				}
			}
		}
	}
}

func TestPodDisruptionBudgets_CoverRunningPods(t *testing.T) {
	m := load(t)
	for _, pdb := range m.pdbs {
		sel := pdb.Spec.Selector.MatchLabels
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", pdb.Metadata.Name)
		}
		covered := false
		for _, d := range m.deployments {
			if !selects(sel, d.Spec.Template.Metadata.Labels) {
				continue
			}
			covered = true
			// A budget the Deployment cannot exceed would block every drain.
			if floor := pdb.Spec.MinAvailable; floor != nil && !floor.IsStr && d.Spec.Replicas != nil && *d.Spec.Replicas <= floor.Int {
				t.Errorf("PodDisruptionBudget %s: minAvailable %d with %d replicas blocks every node drain", pdb.Metadata.Name, floor.Int, *d.Spec.Replicas)
			}
		}
		for _, r := range m.rabbitmqClusters {
			if selects(sel, map[string]string{operatorPodLabel: r.Metadata.Name}) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("PodDisruptionBudget %s: selector %v matches no pods defined here", pdb.Metadata.Name, sel)
		}
	}
	ingress, _ := m.deploymentRunning("ingress")
	if !slices.ContainsFunc(m.pdbs, func(p pdb) bool {
		return selects(p.Spec.Selector.MatchLabels, ingress.Spec.Template.Metadata.Labels) && p.Spec.MinAvailable != nil && p.Spec.MinAvailable.Int >= 1
	}) {
		t.Error("no PodDisruptionBudget keeps at least one ingress pod (minAvailable >= 1)")
	}
}

func TestReferences_NameObjectsThatWillExist(t *testing.T) {
	m := load(t)
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			where := fmt.Sprintf("Deployment %s, container %s", d.Metadata.Name, c.Name)
			for _, from := range c.EnvFrom {
				switch {
				case from.ConfigMapRef != nil:
					if _, ok := m.configMaps[from.ConfigMapRef.Name]; !ok {
						t.Errorf("%s: envFrom ConfigMap %q is not defined here", where, from.ConfigMapRef.Name)
					}
				case from.SecretRef != nil:
					if !m.secretDefined(from.SecretRef.Name) {
						t.Errorf("%s: envFrom Secret %q is neither defined here nor made by the operator", where, from.SecretRef.Name)
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					if err := m.checkSecretKey(r.Name, r.Key); err != nil {
						t.Errorf("%s: %s: %v", where, e.Name, err)
					}
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					if _, ok := m.configMaps[r.Name][r.Key]; !ok {
						t.Errorf("%s: %s: ConfigMap %q has no key %q", where, e.Name, r.Name, r.Key)
					}
				}
			}
		}
	}
	for _, ta := range m.triggerAuths {
		for _, ref := range ta.Spec.SecretTargetRef {
			if err := m.checkSecretKey(ref.Name, ref.Key); err != nil {
				t.Errorf("TriggerAuthentication %s: %s: %v", ta.Metadata.Name, ref.Parameter, err)
			}
		}
	}
	for _, so := range m.scaledObjects {
		for _, tr := range so.Spec.Triggers {
			if tr.AuthenticationRef == nil {
				continue
			}
			if !slices.ContainsFunc(m.triggerAuths, func(ta triggerAuth) bool { return ta.Metadata.Name == tr.AuthenticationRef.Name }) {
				t.Errorf("ScaledObject %s: authenticationRef %q names no TriggerAuthentication defined here", so.Metadata.Name, tr.AuthenticationRef.Name)
			}
		}
	}
}

func TestSharedSettings_IdenticalForIngressAndForwarder(t *testing.T) {
	m := load(t)
	topologyVars := envReads(t, filepath.Join(repoRoot, "pkg", "topology"))
	if len(topologyVars) == 0 {
		t.Fatal("found no variables read in pkg/topology: has LoadConfig moved?")
	}
	ingress, _ := m.containerRunning("ingress")
	forwarder, _ := m.containerRunning("forwarder")
	shared := func(c container) map[string]string {
		vars := map[string]string{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil {
				maps.Copy(vars, m.configMaps[from.ConfigMapRef.Name])
			}
		}
		return vars
	}
	in, fw := shared(ingress), shared(forwarder)
	for _, name := range slices.Sorted(maps.Keys(topologyVars)) {
		// Set once, in a ConfigMap both load: then they cannot drift apart.
		if _, ok := in[name]; !ok {
			t.Errorf("%s is not set by a ConfigMap the ingress loads with envFrom", name)
		}
		if in[name] != fw[name] {
			t.Errorf("%s: ingress gets %q, forwarder %q; both must declare the same topology", name, in[name], fw[name])
		}
		for _, c := range []container{ingress, forwarder} {
			if slices.ContainsFunc(c.Env, func(e envVar) bool { return e.Name == name }) {
				t.Errorf("container %s overrides the shared %s in its own env", c.Name, name)
			}
		}
	}
	if _, ok := fw["CATERING_SERVICE_EP"]; !ok {
		t.Error("CATERING_SERVICE_EP does not come from a ConfigMap the forwarder loads")
	}
}

func TestEnv_OnlyVariablesTheServicesRead(t *testing.T) {
	m := load(t)
	consumers := map[string][]string{} // ConfigMap name → services loading it
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			reads := serviceReads(t, c.Name)
			where := fmt.Sprintf("Deployment %s, container %s", d.Metadata.Name, c.Name)
			for i, e := range c.Env {
				if reads[e.Name] != "" || slices.Contains(goRuntimeEnv, e.Name) {
					continue
				}
				// A helper a later variable is built from, like RABBITMQ_PASSWORD for AMQP_URL.
				helper := slices.ContainsFunc(c.Env[i+1:], func(later envVar) bool {
					return later.Value != nil && slices.Contains(references(*later.Value), e.Name)
				})
				if !helper {
					t.Errorf("%s: sets %s, which services/%s never reads (scanned its config code)", where, e.Name, c.Name)
				}
			}
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef != nil {
					consumers[from.ConfigMapRef.Name] = append(consumers[from.ConfigMapRef.Name], c.Name)
				}
			}
		}
	}
	for name, services := range consumers {
		for key := range m.configMaps[name] {
			if !slices.ContainsFunc(services, func(s string) bool { return serviceReads(t, s)[key] != "" }) {
				t.Errorf("ConfigMap %s: %s is read by none of %v", name, key, services)
			}
		}
	}
}

func TestEnv_ValuesParseAsTheServicesExpect(t *testing.T) {
	m := load(t)
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			reads := serviceReads(t, c.Name)
			env := m.effectiveEnv(c, nil)
			for _, name := range slices.Sorted(maps.Keys(env)) {
				if err := checkType(reads[name], env[name]); err != nil {
					t.Errorf("container %s: %s=%q: %v", c.Name, name, env[name], err)
				}
			}
		}
	}
}

func TestEnv_ReferencesNameEarlierVariables(t *testing.T) {
	m := load(t)
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			// Kubernetes expands $(NAME) only from envFrom and from variables
			// listed earlier; anything else stays literally in the value.
			defined := map[string]bool{}
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef != nil {
					for k := range m.configMaps[from.ConfigMapRef.Name] {
						defined[k] = true
					}
				}
			}
			for _, e := range c.Env {
				if e.Value != nil {
					for _, ref := range references(*e.Value) {
						if !defined[ref] {
							t.Errorf("container %s: %s refers to $(%s), which is not defined before it", c.Name, e.Name, ref)
						}
					}
				}
				defined[e.Name] = true
			}
		}
	}
}

func TestAMQPURL_PointsAtTheRabbitmqCluster(t *testing.T) {
	m := load(t)
	if len(m.rabbitmqClusters) != 1 {
		t.Fatalf("want one RabbitmqCluster, found %d", len(m.rabbitmqClusters))
	}
	cluster := m.rabbitmqClusters[0].Metadata.Name
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			raw, ok := m.effectiveEnv(c, fakeSecret)["AMQP_URL"]
			if !ok {
				t.Errorf("container %s: no AMQP_URL", c.Name)
				continue
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Errorf("container %s: AMQP_URL %q: %v", c.Name, raw, err)
				continue
			}
			if u.Scheme != "amqp" || u.Hostname() != cluster || u.Port() != amqpPort {
				t.Errorf("container %s: AMQP_URL %q, want amqp://…@%s:%s/ (the operator's Service)", c.Name, raw, cluster, amqpPort)
			}
			user, pass := u.User.Username(), ""
			if p, ok := u.User.Password(); ok {
				pass = p
			}
			wantUser, wantPass := fakeSecret(cluster+operatorSecretSuffix, "username"), fakeSecret(cluster+operatorSecretSuffix, "password")
			if user != wantUser || pass != wantPass {
				t.Errorf("container %s: AMQP_URL's credentials are not the operator's %s%s username and password", c.Name, cluster, operatorSecretSuffix)
			}
		}
	}
}

func TestListenAddrs_MatchContainerPorts(t *testing.T) {
	m := load(t)
	for _, tc := range []struct{ service, addrVar, port string }{
		{"ingress", "INGRESS_ADDR", "http"},
		{"ingress", "INGRESS_ADMIN_ADDR", "admin"},
		{"forwarder", "FORWARDER_ADMIN_ADDR", "admin"},
	} {
		t.Run(tc.addrVar, func(t *testing.T) {
			c, _ := m.containerRunning(tc.service)
			addr := m.effectiveEnv(c, nil)[tc.addrVar]
			if addr == "" {
				addr = goDefaultString(t, tc.service, tc.addrVar)
			}
			_, portStr, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("%s=%q: %v", tc.addrVar, addr, err)
			}
			port, _ := strconv.Atoi(portStr)
			got, ok := c.port(intOrString{Str: tc.port, IsStr: true})
			if !ok {
				t.Fatalf("container %s declares no port named %q", c.Name, tc.port)
			}
			if got != port {
				t.Errorf("%s listens on %d (%s=%q), but port %q is %d", c.Name, port, tc.addrVar, addr, tc.port, got)
			}
		})
	}
}

func TestGracePeriods_OutlastGracefulShutdown(t *testing.T) {
	m := load(t)
	for _, tc := range []struct {
		service string
		budget  []string // durations that add up to the longest graceful shutdown
	}{
		// The listener closes, then in-flight requests get their confirm.
		{"ingress", []string{"SHUTDOWN_TIMEOUT"}},
		// One attempt, then the publish that settles it (retry tier or dead letter).
		{"forwarder", []string{"DELIVERY_TIMEOUT", "PUBLISH_TIMEOUT"}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			d, _ := m.deploymentRunning(tc.service)
			c, _ := m.containerRunning(tc.service)
			grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			if grace == nil {
				t.Fatalf("Deployment %s sets no terminationGracePeriodSeconds (the default, 30s, is not sized for it)", d.Metadata.Name)
			}
			env := m.effectiveEnv(c, nil)
			var need time.Duration
			var parts []string
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				s := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
				need += s
				parts = append(parts, "preStop "+s.String())
			}
			for _, name := range tc.budget {
				v, ok := env[name]
				var dur time.Duration
				if ok {
					var err error
					if dur, err = time.ParseDuration(v); err != nil {
						t.Fatalf("%s=%q: %v", name, v, err)
					}
				} else {
					dur = goDefaultDuration(t, tc.service, name)
				}
				need += dur
				parts = append(parts, name+" "+dur.String())
			}
			if got := time.Duration(*grace) * time.Second; got <= need {
				t.Errorf("terminationGracePeriodSeconds %v does not exceed %s = %v: the kubelet would SIGKILL a graceful shutdown", got, strings.Join(parts, " + "), need)
			}
		})
	}
}

func TestScaledObject_ScalesTheForwarderOnTheMainQueue(t *testing.T) {
	m := load(t)
	if len(m.scaledObjects) != 1 {
		t.Fatalf("want one ScaledObject, found %d", len(m.scaledObjects))
	}
	so := m.scaledObjects[0]
	forwarder, _ := m.deploymentRunning("forwarder")
	ref := so.Spec.ScaleTargetRef
	if ref.Name != forwarder.Metadata.Name || (ref.Kind != "" && ref.Kind != "Deployment") {
		t.Errorf("scaleTargetRef %s/%s, want Deployment %s", ref.Kind, ref.Name, forwarder.Metadata.Name)
	}
	if forwarder.Spec.Replicas != nil {
		t.Errorf("Deployment %s sets replicas: every kubectl apply would reset what KEDA's HPA scaled it to", forwarder.Metadata.Name)
	}
	lo, hi := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
	if lo == nil || hi == nil || *lo < 1 || *hi < *lo {
		t.Errorf("want 1 <= minReplicaCount <= maxReplicaCount, got %v and %v", deref(lo), deref(hi))
	}
	if f := so.Spec.Fallback; f != nil && lo != nil && hi != nil && (f.Replicas < *lo || f.Replicas > *hi) {
		t.Errorf("fallback replicas %d outside [%d, %d]", f.Replicas, *lo, *hi)
	}
	ingress, _ := m.containerRunning("ingress")
	mainQueue := m.effectiveEnv(ingress, nil)["TOPOLOGY_PREFIX"] + mainQueueSuffix(t)
	if len(so.Spec.Triggers) != 1 {
		t.Fatalf("want one trigger, found %d", len(so.Spec.Triggers))
	}
	tr := so.Spec.Triggers[0]
	want := map[string]string{"queueName": mainQueue, "mode": "QueueLength", "protocol": "amqp"}
	for k, v := range want {
		if tr.Metadata[k] != v {
			t.Errorf("trigger metadata %s = %q, want %q", k, tr.Metadata[k], v)
		}
	}
	if tr.Type != "rabbitmq" {
		t.Errorf("trigger type %q, want rabbitmq", tr.Type)
	}
	if v, err := strconv.ParseFloat(tr.Metadata["value"], 64); err != nil || v <= 0 {
		t.Errorf("trigger value %q: want a positive number of messages per replica", tr.Metadata["value"])
	}
	// The connection URI must come from somewhere; KEDA takes it as the host parameter.
	if tr.Metadata["host"] != "" {
		t.Error("trigger metadata sets host: credentials belong in a TriggerAuthentication")
	}
	if tr.Metadata["hostFromEnv"] == "" {
		if tr.AuthenticationRef == nil {
			t.Fatal("trigger has neither hostFromEnv nor an authenticationRef")
		}
		for _, ta := range m.triggerAuths {
			if ta.Metadata.Name != tr.AuthenticationRef.Name {
				continue
			}
			hasHost := slices.ContainsFunc(ta.Spec.SecretTargetRef, func(r secretTargetRef) bool { return r.Parameter == "host" }) ||
				slices.ContainsFunc(ta.Spec.Env, func(r triggerEnv) bool { return r.Parameter == "host" })
			if !hasHost {
				t.Errorf("TriggerAuthentication %s provides no host parameter", ta.Metadata.Name)
			}
		}
	}
}

func TestRabbitmqCluster_KeepsAQuorum(t *testing.T) {
	m := load(t)
	for _, r := range m.rabbitmqClusters {
		if r.Spec.Replicas < 3 || r.Spec.Replicas%2 == 0 {
			t.Errorf("RabbitmqCluster %s: %d replicas; quorum queues need an odd number, at least 3, to survive losing a node", r.Metadata.Name, r.Spec.Replicas)
		}
		if r.Spec.Persistence.Storage == "" {
			t.Errorf("RabbitmqCluster %s: no persistence.storage", r.Metadata.Name)
		}
		for _, plugin := range []string{"rabbitmq_management", "rabbitmq_prometheus"} {
			if !slices.Contains(r.Spec.Rabbitmq.AdditionalPlugins, plugin) {
				t.Errorf("RabbitmqCluster %s: %s not in additionalPlugins", r.Metadata.Name, plugin)
			}
		}
		if len(r.Spec.Resources.Requests) == 0 || r.Spec.Resources.Limits["memory"] == "" {
			t.Errorf("RabbitmqCluster %s: set resource requests and a memory limit", r.Metadata.Name)
		}
	}
}

func TestPods_RunHardened(t *testing.T) {
	for _, d := range load(t).deployments {
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			where := fmt.Sprintf("Deployment %s, container %s", d.Metadata.Name, c.Name)
			nonRoot := isTrue(pod.SecurityContext.RunAsNonRoot)
			if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
				nonRoot = *c.SecurityContext.RunAsNonRoot
			}
			if !nonRoot {
				t.Errorf("%s: not runAsNonRoot", where)
			}
			if c.SecurityContext == nil || !isTrue(c.SecurityContext.ReadOnlyRootFilesystem) {
				t.Errorf("%s: root filesystem not read-only", where)
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation not false", where)
			}
			if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: want cpu and memory requests and a memory limit", where)
			}
		}
	}
}

// Both services serve /metrics on their admin port only (issue 10: whoever
// may register must not thereby read the metrics), so that is the port to
// scrape.
func TestPods_AnnotatedForPrometheus(t *testing.T) {
	for _, d := range load(t).deployments {
		a := d.Spec.Template.Metadata.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("Deployment %s: want prometheus.io/scrape \"true\" and prometheus.io/path /metrics on its pods", d.Metadata.Name)
		}
		admin, ok := d.containerPort(intOrString{Str: "admin", IsStr: true})
		if !ok {
			t.Errorf("Deployment %s: no container port named admin, where /metrics is served", d.Metadata.Name)
			continue
		}
		if port, err := strconv.Atoi(a["prometheus.io/port"]); err != nil || port != admin {
			t.Errorf("Deployment %s: prometheus.io/port %q, want the admin port %d (/metrics is not served on the others)", d.Metadata.Name, a["prometheus.io/port"], admin)
		}
	}
}

func TestImages_AreThePlaceholdersOfTheDockerfiles(t *testing.T) {
	for _, d := range load(t).deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			// kustomize's images: matches on the name before the tag.
			if want := "relay/" + c.Name; strings.SplitN(c.Image, ":", 2)[0] != want {
				t.Errorf("container %s: image %q, want the placeholder %s:<tag> that overlays rewrite", c.Name, c.Image, want)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, "deployments", c.Name+".Dockerfile")); err != nil {
				t.Errorf("container %s: no deployments/%s.Dockerfile builds its image", c.Name, c.Name)
			}
		}
	}
}

// TestKubectlKustomize_Builds renders the base the way kubectl apply -k does
// and checks what only the rendering shows. kubectl is optional: everything
// else above reads the files directly.
func TestKubectlKustomize_Builds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the other tests check the files without it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", manifestDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", manifestDir, err, stderr.String())
	}
	m := load(t)
	objects := decodeObjects(t, "kubectl kustomize", &stdout)
	var configMap string
	for _, o := range objects {
		if o.Kind != "Namespace" && o.Metadata.Namespace != m.kust.Namespace {
			t.Errorf("%s rendered in namespace %q, want %q", o.id(), o.Metadata.Namespace, m.kust.Namespace)
		}
		for _, l := range m.kust.Labels {
			if !selects(l.Pairs, o.Metadata.Labels) {
				t.Errorf("%s rendered without the labels %v", o.id(), l.Pairs)
			}
		}
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Metadata.Name, "relay-config-") {
			configMap = o.Metadata.Name
		}
	}
	if configMap == "" {
		t.Fatal("no generated relay-config-<hash> ConfigMap in the rendering")
	}
	for _, o := range objects {
		if o.Kind != "Deployment" {
			continue
		}
		var d deployment
		o.decode(t, &d)
		for _, c := range d.Spec.Template.Spec.Containers {
			if !slices.ContainsFunc(c.EnvFrom, func(f envFromSource) bool { return f.ConfigMapRef != nil && f.ConfigMapRef.Name == configMap }) {
				t.Errorf("rendered Deployment %s does not load %s: kustomize did not rewrite the reference", d.Metadata.Name, configMap)
			}
		}
		for _, l := range m.kust.Labels {
			if !selects(l.Pairs, d.Spec.Template.Metadata.Labels) && l.IncludeTemplates {
				t.Errorf("rendered Deployment %s: pod template lacks %v", d.Metadata.Name, l.Pairs)
			}
			for k := range l.Pairs {
				if _, ok := d.Spec.Selector.MatchLabels[k]; ok {
					t.Errorf("rendered Deployment %s: label %s leaked into the selector", d.Metadata.Name, k)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// What the services read, scanned from their code

var (
	// A Loader call: l.String("NAME", ...), l.Duration("NAME", ...), ...
	loaderCall = regexp.MustCompile(`\.(String|Int|Float|Duration|Bool|Switch|IntSet)\(\s*"([A-Z][A-Z0-9_]*)"\s*,`)
	// A direct lookup: getenv("NAME"), os.Getenv("NAME"), os.LookupEnv("NAME").
	getenvCall = regexp.MustCompile(`(?:[Gg]etenv|LookupEnv)\(\s*"([A-Z][A-Z0-9_]*)"\s*\)`)
)

// envReads returns the variables read by the Go files (tests excluded) of
// dir, each with the Loader method that parses it ("String" for a direct lookup).
func envReads(t *testing.T, dir string) map[string]string {
	t.Helper()
	reads := map[string]string{}
	for _, src := range goSources(t, dir) {
		for _, m := range loaderCall.FindAllStringSubmatch(src, -1) {
			reads[m[2]] = m[1]
		}
		for _, m := range getenvCall.FindAllStringSubmatch(src, -1) {
			if reads[m[1]] == "" {
				reads[m[1]] = "String"
			}
		}
	}
	return reads
}

// serviceReads returns every variable services/<name> reads: its config
// package, its main package, and the shared packages whose LoadConfig the
// config package calls (pkg/topology, pkg/metrics, ...).
func serviceReads(t *testing.T, name string) map[string]string {
	t.Helper()
	dir := filepath.Join(repoRoot, "services", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("container %s: no services/%s to check it against", name, name)
	}
	configDir := filepath.Join(dir, "internal", "config")
	reads := envReads(t, configDir)
	maps.Copy(reads, envReads(t, dir))
	for _, pkg := range sharedConfigPackages(t, configDir) {
		maps.Copy(reads, envReads(t, filepath.Join(repoRoot, "pkg", pkg)))
	}
	if reads["AMQP_URL"] == "" || reads["TOPOLOGY_PREFIX"] == "" {
		t.Fatalf("scanning services/%s found no AMQP_URL or TOPOLOGY_PREFIX: has its configuration moved?", name)
	}
	return reads
}

// relayPkgImport matches an import of one of the shared packages, with or
// without a name: pkgmetrics "github.com/railco/relay/pkg/metrics".
var relayPkgImport = regexp.MustCompile(`(?m)^\s*(?:import\s+)?(\w+\s+)?"github\.com/railco/relay/pkg/([\w/]+)"`)

// sharedConfigPackages lists the pkg/ directories whose LoadConfig the Go
// files in dir call.
func sharedConfigPackages(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, src := range goSources(t, dir) {
		for _, m := range relayPkgImport.FindAllStringSubmatch(src, -1) {
			alias := strings.TrimSpace(m[1])
			if alias == "" {
				alias = filepath.Base(m[2])
			}
			if strings.Contains(src, alias+".LoadConfig(") && !slices.Contains(out, m[2]) {
				out = append(out, m[2])
			}
		}
	}
	return out
}

func goSources(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// goDefault returns the Go expression of name's default in services/<service>.
func goDefault(t *testing.T, service, method, name string) string {
	t.Helper()
	re := regexp.MustCompile(`\.` + method + `\(\s*"` + regexp.QuoteMeta(name) + `"\s*,\s*([^()\n]+)\)`)
	configDir := filepath.Join(repoRoot, "services", service, "internal", "config")
	dirs := []string{configDir}
	for _, pkg := range sharedConfigPackages(t, configDir) {
		dirs = append(dirs, filepath.Join(repoRoot, "pkg", pkg))
	}
	for _, dir := range dirs {
		for _, src := range goSources(t, dir) {
			if m := re.FindStringSubmatch(src); m != nil {
				return strings.TrimSpace(m[1])
			}
		}
	}
	t.Fatalf("%s is not set in the manifests and its default could not be found in services/%s; set it explicitly", name, service)
	return ""
}

var goDurationExpr = regexp.MustCompile(`^(?:(\d+)\s*\*\s*)?time\.(Nanosecond|Microsecond|Millisecond|Second|Minute|Hour)$`)

func goDefaultDuration(t *testing.T, service, name string) time.Duration {
	t.Helper()
	expr := goDefault(t, service, "Duration", name)
	m := goDurationExpr.FindStringSubmatch(expr)
	if m == nil {
		t.Fatalf("%s's default %q in services/%s is not a simple duration; set it explicitly in the manifest", name, expr, service)
	}
	n := 1
	if m[1] != "" {
		n, _ = strconv.Atoi(m[1])
	}
	units := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond, "Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
	return time.Duration(n) * units[m[2]]
}

func goDefaultString(t *testing.T, service, name string) string {
	t.Helper()
	expr := goDefault(t, service, "String", name)
	s, err := strconv.Unquote(expr)
	if err != nil {
		t.Fatalf("%s's default %s in services/%s is not a string literal; set it explicitly in the manifest", name, expr, service)
	}
	return s
}

// mainQueueSuffix is what topology.New appends to TOPOLOGY_PREFIX to name
// the main queue.
func mainQueueSuffix(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`Queue:\s*cfg\.Prefix\s*\+\s*("[^"]*")`)
	for _, src := range goSources(t, filepath.Join(repoRoot, "pkg", "topology")) {
		if m := re.FindStringSubmatch(src); m != nil {
			s, _ := strconv.Unquote(m[1])
			return s
		}
	}
	t.Fatal("cannot find how pkg/topology names the main queue (Queue: cfg.Prefix + \"...\")")
	return ""
}

// checkType parses value the way the Loader method would.
func checkType(method, value string) error {
	var err error
	switch method {
	case "Int":
		_, err = strconv.Atoi(value)
	case "Float":
		_, err = strconv.ParseFloat(value, 64)
	case "Duration":
		_, err = time.ParseDuration(value)
	case "Bool":
		_, err = strconv.ParseBool(value)
	case "IntSet":
		for f := range strings.SplitSeq(value, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if _, e := strconv.Atoi(f); e != nil {
					err = e
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("the service reads it with Loader.%s and would reject it: %w", method, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Loading the manifests

type manifests struct {
	kust    kustomization
	objects []object

	configMaps       map[string]map[string]string // name → data, generated or not
	secrets          map[string]map[string]bool   // name → keys, of Secrets defined here
	deployments      []deployment
	services         []service
	pdbs             []pdb
	rabbitmqClusters []rabbitmqCluster
	scaledObjects    []scaledObject
	triggerAuths     []triggerAuth
}

func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]map[string]string{}, secrets: map[string]map[string]bool{}}
	b, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, g := range m.kust.ConfigMapGenerator {
		data := map[string]string{}
		lines := slices.Clone(g.Literals)
		for _, env := range g.Envs {
			b, err := os.ReadFile(filepath.Join(manifestDir, env))
			if err != nil {
				t.Fatal(err)
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					lines = append(lines, line)
				}
			}
		}
		for _, l := range lines {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("configMapGenerator %s: %q is not KEY=value", g.Name, l)
			}
			data[k] = v
		}
		if len(g.Files) > 0 {
			t.Fatalf("configMapGenerator %s: files are not supported by this test", g.Name)
		}
		m.configMaps[g.Name] = data
	}
	for _, name := range m.kust.Resources {
		f, err := os.Open(filepath.Join(manifestDir, name))
		if err != nil {
			t.Fatal(err)
		}
		m.objects = append(m.objects, decodeObjects(t, name, f)...)
		f.Close()
	}
	for _, o := range m.objects {
		switch o.Kind {
		case "ConfigMap":
			var cm struct {
				Data map[string]string `yaml:"data"`
			}
			o.decode(t, &cm)
			m.configMaps[o.Metadata.Name] = cm.Data
		case "Secret":
			var s struct {
				Data       map[string]string `yaml:"data"`
				StringData map[string]string `yaml:"stringData"`
			}
			o.decode(t, &s)
			keys := map[string]bool{}
			for k := range s.Data {
				keys[k] = true
			}
			for k := range s.StringData {
				keys[k] = true
			}
			m.secrets[o.Metadata.Name] = keys
		case "Deployment":
			var d deployment
			o.decode(t, &d)
			m.deployments = append(m.deployments, d)
		case "Service":
			var s service
			o.decode(t, &s)
			m.services = append(m.services, s)
		case "PodDisruptionBudget":
			var p pdb
			o.decode(t, &p)
			m.pdbs = append(m.pdbs, p)
		case "RabbitmqCluster":
			var r rabbitmqCluster
			o.decode(t, &r)
			m.rabbitmqClusters = append(m.rabbitmqClusters, r)
		case "ScaledObject":
			var s scaledObject
			o.decode(t, &s)
			m.scaledObjects = append(m.scaledObjects, s)
		case "TriggerAuthentication":
			var ta triggerAuth
			o.decode(t, &ta)
			m.triggerAuths = append(m.triggerAuths, ta)
		}
	}
	return m
}

func decodeObjects(t *testing.T, file string, r io.Reader) []object {
	t.Helper()
	var out []object
	dec := yaml.NewDecoder(r)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue // an empty document, e.g. after a trailing ---
		}
		o := object{File: file, doc: &doc}
		if err := doc.Decode(&o); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, o)
	}
}

func (m *manifests) deploymentRunning(container string) (deployment, bool) {
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == container {
				return d, true
			}
		}
	}
	return deployment{}, false
}

func (m *manifests) containerRunning(name string) (container, bool) {
	d, ok := m.deploymentRunning(name)
	if !ok {
		return container{}, false
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return container{}, false
}

// operatorSecret reports whether name is the default-user Secret the
// operator makes for one of the RabbitmqClusters here.
func (m *manifests) operatorSecret(name string) bool {
	return slices.ContainsFunc(m.rabbitmqClusters, func(r rabbitmqCluster) bool { return r.Metadata.Name+operatorSecretSuffix == name })
}

func (m *manifests) secretDefined(name string) bool {
	_, ok := m.secrets[name]
	_, external := externalSecrets[name]
	return ok || external || m.operatorSecret(name)
}

func (m *manifests) checkSecretKey(name, key string) error {
	if m.operatorSecret(name) {
		if !slices.Contains(operatorSecretKeys, key) {
			return fmt.Errorf("the operator's Secret %s has no key %q (it has %v)", name, key, operatorSecretKeys)
		}
		return nil
	}
	if keys, ok := externalSecrets[name]; ok {
		if !slices.Contains(keys, key) {
			return fmt.Errorf("the deployer's Secret %s has no key %q (externalSecrets says %v)", name, key, keys)
		}
		return nil
	}
	keys, ok := m.secrets[name]
	if !ok {
		return fmt.Errorf("Secret %q is neither defined here, nor made by the RabbitMQ operator (<RabbitmqCluster>%s), nor one of the deployer's (externalSecrets)", name, operatorSecretSuffix)
	}
	if !keys[key] {
		return fmt.Errorf("Secret %s has no key %q", name, key)
	}
	return nil
}

// effectiveEnv is the environment a container starts with: envFrom, then env
// overriding it, with $(NAME) references expanded as Kubernetes does. secret
// supplies values for secretKeyRef variables (nil leaves them out).
func (m *manifests) effectiveEnv(c container, secret func(name, key string) string) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			maps.Copy(env, m.configMaps[from.ConfigMapRef.Name])
		}
	}
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			env[e.Name] = expand(*e.Value, env)
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = m.configMaps[e.ValueFrom.ConfigMapKeyRef.Name][e.ValueFrom.ConfigMapKeyRef.Key]
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && secret != nil:
			env[e.Name] = secret(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		}
	}
	return env
}

func fakeSecret(name, key string) string { return "fake-" + name + "-" + key }

// varRef matches $(NAME) and the escape $$.
var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func references(value string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(value, -1) {
		if m[1] != "" {
			out = append(out, m[1])
		}
	}
	return out
}

func expand(value string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(value, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		if v, ok := env[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// selects reports whether the non-empty selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func duplicates(list []string) []string {
	seen := map[string]bool{}
	var dup []string
	for _, s := range list {
		if seen[s] {
			dup = append(dup, s)
		}
		seen[s] = true
	}
	return dup
}

func isTrue(b *bool) bool { return b != nil && *b }

func deref(p *int) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// ---------------------------------------------------------------------------
// The parts of the Kubernetes, operator and KEDA schemas the tests look at

type object struct {
	File       string     `yaml:"-"`
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	doc        *yaml.Node
}

func (o object) id() string { return o.Kind + "/" + o.Metadata.Name }

func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.doc.Decode(v); err != nil {
		t.Fatalf("%s: %s: %v", o.File, o.id(), err)
	}
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type kustomization struct {
	Namespace    string            `yaml:"namespace"`
	Resources    []string          `yaml:"resources"`
	CommonLabels map[string]string `yaml:"commonLabels"`
	Labels       []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	ConfigMapGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
		Envs     []string `yaml:"envs"`
		Files    []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
}

// intOrString is a port: a number or the name of a container port.
type intOrString struct {
	Int   int
	Str   string
	IsStr bool
}

func (p *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Tag == "!!int" {
		return n.Decode(&p.Int)
	}
	p.IsStr = true
	return n.Decode(&p.Str)
}

func (p intOrString) empty() bool { return !p.IsStr && p.Int == 0 }

func (p intOrString) String() string {
	if p.IsStr {
		return strconv.Quote(p.Str)
	}
	return strconv.Itoa(p.Int)
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

type deployment struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// containerPort resolves p against every container of the Deployment.
func (d deployment) containerPort(p intOrString) (int, bool) {
	for _, c := range d.Spec.Template.Spec.Containers {
		if n, ok := c.port(p); ok {
			return n, true
		}
	}
	return 0, false
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
		RunAsGroup   *int64 `yaml:"runAsGroup"`
		FSGroup      *int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Volumes                   []volume `yaml:"volumes"`
	TopologySpreadConstraints []struct {
		LabelSelector labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom        []envFromSource `yaml:"envFrom"`
	Env            []envVar        `yaml:"env"`
	VolumeMounts   []volumeMount   `yaml:"volumeMounts"`
	ReadinessProbe *probe          `yaml:"readinessProbe"`
	LivenessProbe  *probe          `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

// port resolves p (a number or a port name) to a declared container port.
func (c container) port(p intOrString) (int, bool) {
	for _, cp := range c.Ports {
		if (p.IsStr && cp.Name == p.Str) || (!p.IsStr && cp.ContainerPort == p.Int) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

type envFromSource struct {
	ConfigMapRef *struct {
		Name string `yaml:"name"`
	} `yaml:"configMapRef"`
	SecretRef *struct {
		Name string `yaml:"name"`
	} `yaml:"secretRef"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName  string       `yaml:"secretName"`
		DefaultMode *int         `yaml:"defaultMode"`
		Optional    *bool        `yaml:"optional"`
		Items       []secretItem `yaml:"items"`
	} `yaml:"secret"`
}

type secretItem struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
	Mode *int   `yaml:"mode"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type envVar struct {
	Name      string  `yaml:"name"`
	Value     *string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef     *keyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef  *keyRef `yaml:"configMapKeyRef"`
		ResourceFieldRef *struct {
			Resource string `yaml:"resource"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
}

type service struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type servicePort struct {
	Name       string      `yaml:"name"`
	Port       int         `yaml:"port"`
	TargetPort intOrString `yaml:"targetPort"`
}

type pdb struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type rabbitmqCluster struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas    int `yaml:"replicas"`
		Persistence struct {
			Storage string `yaml:"storage"`
		} `yaml:"persistence"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		Rabbitmq struct {
			AdditionalPlugins []string `yaml:"additionalPlugins"`
		} `yaml:"rabbitmq"`
	} `yaml:"spec"`
}

type scaledObject struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Fallback        *struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"fallback"`
		Triggers []struct {
			Type              string            `yaml:"type"`
			Metadata          map[string]string `yaml:"metadata"`
			AuthenticationRef *struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type secretTargetRef struct {
	Parameter string `yaml:"parameter"`
	Name      string `yaml:"name"`
	Key       string `yaml:"key"`
}

type triggerEnv struct {
	Parameter     string `yaml:"parameter"`
	Name          string `yaml:"name"`
	ContainerName string `yaml:"containerName"`
}

type triggerAuth struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		SecretTargetRef []secretTargetRef `yaml:"secretTargetRef"`
		Env             []triggerEnv      `yaml:"env"`
	} `yaml:"spec"`
}
