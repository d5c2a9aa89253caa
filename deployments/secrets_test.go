package deployments

import (
	"context"
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
	"time"

	"go.yaml.in/yaml/v3"
)

// What issue 10 asks of the Kubernetes manifests, checked on the files alone:
// the ingress takes its API keys from a Secret mounted as a file, the
// forwarder signs with a Secret, no secret is ever a literal value or a
// ConfigMap entry, /metrics is reachable on the admin ports only, and the
// Secrets the deployer makes are documented.

// secretName matches the variables that hold a secret themselves (not a path
// to one): they must come from a Secret, never from a literal or a ConfigMap.
var secretName = regexp.MustCompile(`(SECRET|TOKEN|PASSWORD|PASS|_KEY|_KEYS)$`)

func TestSecrets_NeverLiteralOrInAConfigMap(t *testing.T) {
	m := load(t)
	for name, data := range m.configMaps {
		for key := range data {
			if secretName.MatchString(key) {
				t.Errorf("ConfigMap %s holds %s: a secret belongs in a Secret", name, key)
			}
		}
	}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if !secretName.MatchString(e.Name) {
					continue
				}
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("container %s: %s is not taken from a Secret (secretKeyRef)", c.Name, e.Name)
				}
			}
		}
	}
}

// The services must be configured with what the issue requires in production:
// API keys on the ingress, a signing secret on the forwarder. Both are
// required: a missing Secret keeps the pod from starting, where an optional
// one would start an ingress open to anyone or a forwarder whose requests the
// backend cannot tell from anyone else's.
func TestSecrets_APIKeysAndSigningSecretAreRequired(t *testing.T) {
	m := load(t)
	ingress, _ := m.containerRunning("ingress")
	if m.effectiveEnv(ingress, nil)["INGRESS_API_KEYS_FILE"] == "" {
		t.Error("the ingress has no INGRESS_API_KEYS_FILE: it would accept registrations from anyone")
	}
	forwarder, _ := m.containerRunning("forwarder")
	i := slices.IndexFunc(forwarder.Env, func(e envVar) bool { return e.Name == "CATERING_SIGNING_SECRET" })
	switch {
	case i < 0:
		t.Error("the forwarder has no CATERING_SIGNING_SECRET: its deliveries would go unsigned")
	case forwarder.Env[i].ValueFrom == nil || forwarder.Env[i].ValueFrom.SecretKeyRef == nil:
		t.Error("CATERING_SIGNING_SECRET does not come from a Secret")
	case isTrue(forwarder.Env[i].ValueFrom.SecretKeyRef.Optional):
		t.Error("CATERING_SIGNING_SECRET is optional: without the Secret the forwarder would start and send unsigned requests")
	}
}

// A variable naming a file (…_FILE) with a secret in it must point into a
// Secret volume that holds that file, that the container's user can read,
// and that the kubelet keeps up to date: a subPath mount never sees a
// changed Secret, so keys could not be rotated without a restart.
func TestSecrets_FilesAreMountedSecretsTheServiceCanRead(t *testing.T) {
	m := load(t)
	checked := 0
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			env := m.effectiveEnv(c, nil)
			for _, name := range slices.Sorted(maps.Keys(env)) {
				file := env[name]
				if !strings.HasSuffix(name, "_FILE") || strings.HasSuffix(name, "ADDR_FILE") || !path.IsAbs(file) {
					continue // ADDR_FILE: written by the service, not read
				}
				checked++
				where := fmt.Sprintf("container %s: %s=%s", c.Name, name, file)
				mount, ok := mountOf(c, file)
				if !ok {
					t.Errorf("%s: no volumeMount holds it", where)
					continue
				}
				if mount.SubPath != "" {
					t.Errorf("%s: mounted with subPath, which the kubelet never updates: a rotated Secret would need a restart", where)
				}
				if !mount.ReadOnly {
					t.Errorf("%s: mount %s is not readOnly", where, mount.MountPath)
				}
				i := slices.IndexFunc(pod.Volumes, func(v volume) bool { return v.Name == mount.Name })
				if i < 0 || pod.Volumes[i].Secret == nil {
					t.Errorf("%s: volume %q is not a Secret volume", where, mount.Name)
					continue
				}
				vol := pod.Volumes[i].Secret
				if isTrue(vol.Optional) {
					t.Errorf("%s: Secret volume %s is optional: the pod would start without the file", where, vol.SecretName)
				}
				rel := strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")+"/")
				key, mode := rel, vol.DefaultMode
				if len(vol.Items) > 0 {
					j := slices.IndexFunc(vol.Items, func(it secretItem) bool { return it.Path == rel })
					if j < 0 {
						t.Errorf("%s: Secret volume %s projects no item to %s", where, vol.SecretName, rel)
						continue
					}
					key = vol.Items[j].Key
					if vol.Items[j].Mode != nil {
						mode = vol.Items[j].Mode
					}
				}
				if err := m.checkSecretKey(vol.SecretName, key); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				if err := readable(pod, c, mode); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no container reads a secret from a file; INGRESS_API_KEYS_FILE should")
	}
}

// mountOf returns the mount of c whose directory holds file.
func mountOf(c container, file string) (volumeMount, bool) {
	for _, vm := range c.VolumeMounts {
		dir := strings.TrimSuffix(vm.MountPath, "/") + "/"
		if strings.HasPrefix(file, dir) {
			return vm, true
		}
	}
	return volumeMount{}, false
}

// readable checks that a file of a Secret volume with mode (nil: the
// kubelet's 0644) is readable by the container's user. The kubelet makes the
// files root's, with fsGroup as their group when the pod sets one.
func readable(pod podSpec, c container, mode *int) error {
	perm := 0o644
	if mode != nil {
		perm = *mode
	}
	uid := pod.SecurityContext.RunAsUser
	switch {
	case uid != nil && *uid == 0:
		return nil
	case perm&0o004 != 0:
		return nil
	case perm&0o040 != 0 && pod.SecurityContext.FSGroup != nil:
		return nil
	}
	return fmt.Errorf("mode %#o, owner root, fsGroup %v: the container's user %v cannot read it", perm, deref64(pod.SecurityContext.FSGroup), deref64(uid))
}

func deref64(p *int64) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// The Secrets the deployer makes must be ones the manifests use, and
// kubernetes/README.md must say how to make each, with its keys.
func TestExternalSecrets_UsedAndDocumented(t *testing.T) {
	m := load(t)
	used := map[string]bool{}
	for _, d := range m.deployments {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				used[v.Secret.SecretName] = true
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					used[e.ValueFrom.SecretKeyRef.Name] = true
				}
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(manifestDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), " ") // join continued shell lines
	for _, name := range slices.Sorted(maps.Keys(externalSecrets)) {
		if !used[name] {
			t.Errorf("externalSecrets lists %s, which no Deployment uses", name)
		}
		create := regexp.MustCompile(`create secret generic ` + regexp.QuoteMeta(name) + `\b[^\n]*`)
		line := create.FindString(readme)
		if line == "" {
			t.Errorf("kubernetes/README.md does not show `kubectl -n relay create secret generic %s ...`", name)
			continue
		}
		for _, key := range externalSecrets[name] {
			if !regexp.MustCompile(`--from-(literal|file)=` + regexp.QuoteMeta(key) + `=`).MatchString(line) {
				t.Errorf("kubernetes/README.md makes %s without its key %s: %s", name, key, line)
			}
		}
	}
}

// /metrics lives on the admin ports: each Deployment declares one, a
// headless Service reaches it for Prometheus, and the ingress's clients'
// Service (the one an Ingress or a LoadBalancer exposes) never carries it.
func TestAdminPorts_OnHeadlessServicesOnly(t *testing.T) {
	m := load(t)
	for _, d := range m.deployments {
		admin, ok := d.containerPort(intOrString{Str: "admin", IsStr: true})
		if !ok {
			t.Errorf("Deployment %s declares no port named admin", d.Metadata.Name)
			continue
		}
		headless := false
		for _, s := range m.services {
			if !selects(s.Spec.Selector, d.Spec.Template.Metadata.Labels) {
				continue
			}
			for _, p := range s.Spec.Ports {
				target := p.TargetPort
				if target.empty() {
					target = intOrString{Int: p.Port}
				}
				if n, _ := d.containerPort(target); n != admin {
					continue
				}
				if s.Spec.ClusterIP != "None" {
					t.Errorf("Service %s exposes the admin port %d of %s: keep it to a headless Service of its own", s.Metadata.Name, admin, d.Metadata.Name)
				} else if p.Name == "admin" {
					headless = true
				}
			}
		}
		if !headless {
			t.Errorf("no headless Service has a port named admin for Deployment %s: Prometheus (a ServiceMonitor) cannot find its pods", d.Metadata.Name)
		}
	}
}

// The prometheus-operator component's ServiceMonitor must scrape the admin
// port of both services, in the base's namespace, with the job names the
// compose Prometheus uses (ingress, forwarder). The dashboard and the alerts
// name no job, but the same names everywhere keep queries portable.
func TestServiceMonitor_ScrapesTheAdminPorts(t *testing.T) {
	m := load(t)
	dir := filepath.Join(manifestDir, "prometheus-operator")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var comp struct {
		Kind      string   `yaml:"kind"`
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &comp); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if comp.Kind != "Component" {
		t.Errorf("%s/kustomization.yaml is a %q, want a Component (added to an overlay with components:)", dir, comp.Kind)
	}
	var monitors []object
	for _, r := range comp.Resources {
		f, err := os.Open(filepath.Join(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		monitors = append(monitors, decodeObjects(t, r, f)...)
		f.Close()
	}
	if len(monitors) == 0 {
		t.Fatal("the prometheus-operator component has no ServiceMonitor")
	}
	scraped := map[string]bool{}
	for _, o := range monitors {
		if o.Kind != "ServiceMonitor" {
			continue
		}
		var sm struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				JobLabel  string        `yaml:"jobLabel"`
				Selector  labelSelector `yaml:"selector"`
				Endpoints []struct {
					Port string `yaml:"port"`
					Path string `yaml:"path"`
				} `yaml:"endpoints"`
			} `yaml:"spec"`
		}
		o.decode(t, &sm)
		if sm.Metadata.Namespace != m.kust.Namespace {
			t.Errorf("ServiceMonitor %s in namespace %q: a ServiceMonitor selects Services of its own namespace, %q", sm.Metadata.Name, sm.Metadata.Namespace, m.kust.Namespace)
		}
		for _, s := range m.services {
			if !selects(sm.Spec.Selector.MatchLabels, s.Metadata.Labels) {
				continue
			}
			for _, ep := range sm.Spec.Endpoints {
				if ep.Path != "" && ep.Path != "/metrics" {
					t.Errorf("ServiceMonitor %s scrapes %s, want /metrics", sm.Metadata.Name, ep.Path)
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(p servicePort) bool { return p.Name == ep.Port }) {
					continue
				}
				if s.Spec.ClusterIP != "None" {
					t.Errorf("ServiceMonitor %s scrapes port %s of Service %s, the clients' Service", sm.Metadata.Name, ep.Port, s.Metadata.Name)
				}
				job := s.Metadata.Labels[sm.Spec.JobLabel]
				if sm.Spec.JobLabel == "" {
					job = s.Metadata.Name
				}
				scraped[job] = true
			}
		}
	}
	for _, job := range []string{"ingress", "forwarder"} {
		if !scraped[job] {
			t.Errorf("no ServiceMonitor endpoint scrapes a Service as job %q (as compose's Prometheus does); scraped: %v", job, slices.Sorted(maps.Keys(scraped)))
		}
	}
}

// TestKubectlKustomize_WithThePrometheusOperatorComponent renders an overlay
// of the base with the component, as the component's comment shows.
func TestKubectlKustomize_WithThePrometheusOperatorComponent(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; TestServiceMonitor_ScrapesTheAdminPorts checks the files without it")
	}
	overlay := t.TempDir()
	base, err := filepath.Abs(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(overlay, base) // kustomize refuses absolute paths
	if err != nil {
		t.Fatal(err)
	}
	kust := fmt.Sprintf("resources:\n  - %s\ncomponents:\n  - %s\n", rel, filepath.Join(rel, "prometheus-operator"))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", overlay).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize of base + component: %v\n%s", err, out)
	}
	objects := decodeObjects(t, "kubectl kustomize", strings.NewReader(string(out)))
	ns := load(t).kust.Namespace
	for _, want := range []struct{ kind, name string }{
		{"ServiceMonitor", "relay"},
		{"ServiceMonitor", "relay-rabbitmq"},
		{"PrometheusRule", "relay"},
	} {
		if !slices.ContainsFunc(objects, func(o object) bool {
			return o.Kind == want.kind && o.Metadata.Name == want.name && o.Metadata.Namespace == ns
		}) {
			t.Errorf("the rendering has no %s %s in the base's namespace:\n%s", want.kind, want.name, out)
		}
	}
}
