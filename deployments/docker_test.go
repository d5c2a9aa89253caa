package deployments

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// No Docker engine runs on our machines, so these tests check what can be
// checked without one: that docker-compose parses the compose file (Debian's
// docker-compose package) and renders it as intended (published ports,
// secrets from the env file, the demo defaults without one, .env.example,
// Prometheus's targets), and that each Dockerfile's build stage, replayed
// step by step in a scratch directory (COPY the same files, RUN the same
// commands with the same ENV), produces the binary the runtime stage copies.

var services = map[string]string{ // Dockerfile name → the port its service listens on by default
	"ingress":       "8290",
	"forwarder":     "8291",
	"catering-stub": "8080",
}

// The compose files of each variant: `docker compose up` runs the single
// node, docker-compose.cluster.yml on top of it a three-node cluster.
var (
	singleNode = []string{"docker-compose.yml"}
	cluster    = []string{"docker-compose.yml", "docker-compose.cluster.yml"}
)

// fileArgs are docker-compose's -f options for files.
func fileArgs(files []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", filepath.Join(repoRoot, f))
	}
	return args
}

func dockerCompose(t *testing.T, args ...string) []byte {
	t.Helper()
	return dockerComposeFiles(t, singleNode, args...)
}

func dockerComposeFiles(t *testing.T, files []string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed (apt-get install -y docker-compose): the compose file cannot be validated")
	}
	cmd := exec.Command(bin, append(fileArgs(files), args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s %s: %v\n%s", strings.Join(files, " + "), strings.Join(args, " "), err, out)
	}
	return out
}

func TestCompose_Validates(t *testing.T) {
	for _, files := range [][]string{singleNode, cluster} {
		dockerComposeFiles(t, files, "config", "-q")
		dockerComposeFiles(t, files, "--profile", "observability", "config", "-q")
	}
}

// composeFile is the part of `docker-compose config` the test reads.
type composeFile struct {
	Services map[string]struct {
		Image    string `yaml:"image"`
		Hostname string `yaml:"hostname"`
		Build    struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Ports       []any             `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck map[string]any `yaml:"healthcheck"`
		Volumes     []any          `yaml:"volumes"`
		Profiles    []string       `yaml:"profiles"`
		Entrypoint  []string       `yaml:"entrypoint"`
		Networks    map[string]*struct {
			Aliases []string `yaml:"aliases"`
		} `yaml:"networks"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestCompose_FitsTheStory(t *testing.T) {
	var c composeFile
	decodeYAML(t, dockerCompose(t, "--profile", "observability", "config"), &c)

	rabbit := c.Services["rabbitmq"]
	if !strings.HasPrefix(rabbit.Image, "rabbitmq:4") || !strings.Contains(rabbit.Image, "management") {
		t.Errorf("rabbitmq image %q, want a 4.x management image", rabbit.Image)
	}
	if len(rabbit.Healthcheck) == 0 || len(rabbit.Volumes) == 0 || len(c.Volumes) == 0 {
		t.Error("rabbitmq needs a healthcheck and a named volume (messages survive down/up)")
	}
	if fwd := c.Services["forwarder"]; len(fwd.Ports) != 0 {
		t.Errorf("forwarder publishes host ports %v: --scale forwarder=3 would clash", fwd.Ports)
	}
	if ep := c.Services["forwarder"].Environment["CATERING_SERVICE_EP"]; ep == "" {
		t.Error("forwarder has no CATERING_SERVICE_EP, as the seed sets it")
	}
	for _, svc := range []string{"ingress", "forwarder"} {
		if c.Services[svc].DependsOn["rabbitmq"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy rabbitmq", svc)
		}
	}
	for name := range services {
		b := c.Services[name].Build
		if want := "deployments/" + name + ".Dockerfile"; !strings.HasSuffix(b.Dockerfile, want) {
			t.Errorf("%s builds from %q, want %s", name, b.Dockerfile, want)
		}
	}
	for _, svc := range []string{"prometheus", "grafana"} {
		if s, ok := c.Services[svc]; !ok || len(s.Profiles) == 0 || s.Profiles[0] != "observability" {
			t.Errorf("%s missing from the observability profile", svc)
		}
	}
}

// composeVar matches a variable docker-compose.yml interpolates: ${NAME},
// ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $NAME.
var composeVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// composeVars returns the variables the compose files (both variants) read.
// $$ is a literal $ for the container, not a variable of compose's.
func composeVars(t *testing.T) []string {
	t.Helper()
	var vars []string
	for _, file := range cluster {
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range composeVar.FindAllStringSubmatch(strings.ReplaceAll(line, "$$", ""), -1) {
				if !slices.Contains(vars, m[1]) {
					vars = append(vars, m[1])
				}
			}
		}
	}
	slices.Sort(vars)
	return vars
}

// composeConfig renders the compose file, observability profile included,
// with env as the only source of its variables: an env file of the test's
// own instead of a developer's .env, and none of the variables compose
// reads from the test's environment.
func composeConfig(t *testing.T, env map[string]string) composeFile {
	t.Helper()
	return composeConfigFiles(t, singleNode, env)
}

// composeConfigFiles is composeConfig for the compose files of a variant.
func composeConfigFiles(t *testing.T, files []string, env map[string]string) composeFile {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed (apt-get install -y docker-compose): the compose file cannot be validated")
	}
	envFile := filepath.Join(t.TempDir(), "env")
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		lines = append(lines, k+"="+env[k])
	}
	if err := os.WriteFile(envFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := composeVars(t)
	cmd := exec.Command(bin, append(fileArgs(files), "--env-file", envFile, "--profile", "observability", "config")...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(read, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("docker-compose %s config: %v\n%s", strings.Join(files, " + "), err, stderr)
	}
	var c composeFile
	decodeYAML(t, out, &c)
	return c
}

// publishedPort is one entry of a service's ports, in either of the forms
// `config` prints: "127.0.0.1:5672:5672/tcp" (docker-compose 1.x) or
// {host_ip, published, target} (both).
type publishedPort struct{ hostIP, published, target string }

func parsePort(t *testing.T, p any) publishedPort {
	t.Helper()
	switch v := p.(type) {
	case string:
		v, _, _ = strings.Cut(v, "/")
		parts := strings.Split(v, ":")
		switch len(parts) {
		case 1:
			return publishedPort{target: parts[0]}
		case 2:
			return publishedPort{published: parts[0], target: parts[1]}
		case 3:
			return publishedPort{hostIP: parts[0], published: parts[1], target: parts[2]}
		}
	case map[string]any:
		str := func(k string) string {
			if v[k] == nil {
				return ""
			}
			return fmt.Sprint(v[k])
		}
		return publishedPort{hostIP: str("host_ip"), published: str("published"), target: str("target")}
	}
	t.Fatalf("a port in a form this test does not know: %#v", p)
	return publishedPort{}
}

// bindMount is one entry of a service's volumes: "src:dst[:ro]" or
// {type, source, target, read_only}.
type bindMount struct {
	source, target string
	readOnly       bool
}

func parseVolume(t *testing.T, v any) bindMount {
	t.Helper()
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			return bindMount{target: v}
		}
		return bindMount{source: parts[0], target: parts[1], readOnly: len(parts) > 2 && strings.Contains(parts[2], "ro")}
	case map[string]any:
		ro, _ := v["read_only"].(bool)
		return bindMount{source: fmt.Sprint(v["source"]), target: fmt.Sprint(v["target"]), readOnly: ro}
	}
	t.Fatalf("a volume in a form this test does not know: %#v", v)
	return bindMount{}
}

// Only the ingress's API is for the network. RabbitMQ (AMQP and the
// management UI), Grafana, Prometheus, the stub and the admin ports are for
// the machine's own user: published on 127.0.0.1, or not at all.
func TestCompose_OnlyTheIngressAPIIsPublishedBeyondLoopback(t *testing.T) {
	for _, files := range [][]string{singleNode, cluster} {
		t.Run(files[len(files)-1], func(t *testing.T) {
			c := composeConfigFiles(t, files, nil)
			public := 0
			for _, name := range slices.Sorted(maps.Keys(c.Services)) {
				for _, raw := range c.Services[name].Ports {
					p := parsePort(t, raw)
					if p.hostIP == "127.0.0.1" {
						continue
					}
					if name == "ingress" && p.target == services["ingress"] {
						public++
						continue
					}
					t.Errorf("%s publishes container port %s on %q (every interface): bind it to 127.0.0.1 (\"127.0.0.1:%s:%s\")", name, p.target, p.hostIP, p.published, p.target)
				}
			}
			if public != 1 {
				t.Errorf("the ingress's API port %s is published on every interface %d times, want once", services["ingress"], public)
			}
		})
	}
}

// testSecrets are values no default has, so that seeing one in the rendered
// configuration proves it came from the env file.
var testSecrets = map[string]string{
	"RABBITMQ_DEFAULT_USER":   "relay-test-user",
	"RABBITMQ_DEFAULT_PASS":   "test-amqp-password-4f1c",
	"GRAFANA_ADMIN_PASSWORD":  "test-grafana-password-9a2e",
	"CATERING_SIGNING_SECRET": "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0zMi1ieXRlcyEh",
	"INGRESS_ADMIN_TOKEN":     "test-ingress-admin-token-77",
	"FORWARDER_ADMIN_TOKEN":   "test-forwarder-admin-token-88",
	"RELAY_API_KEYS_DIR":      "/srv/relay-test/api-keys",
}

func TestCompose_SecretsComeFromTheEnvFile(t *testing.T) {
	c := composeConfig(t, testSecrets)
	env := func(svc string) map[string]string { return c.Services[svc].Environment }
	want := []struct{ service, variable, value string }{
		{"rabbitmq", "RABBITMQ_DEFAULT_USER", testSecrets["RABBITMQ_DEFAULT_USER"]},
		{"rabbitmq", "RABBITMQ_DEFAULT_PASS", testSecrets["RABBITMQ_DEFAULT_PASS"]},
		{"grafana", "GF_SECURITY_ADMIN_PASSWORD", testSecrets["GRAFANA_ADMIN_PASSWORD"]},
		{"forwarder", "CATERING_SIGNING_SECRET", testSecrets["CATERING_SIGNING_SECRET"]},
		{"catering-stub", "STUB_SIGNING_SECRET", testSecrets["CATERING_SIGNING_SECRET"]},
		{"ingress", "INGRESS_ADMIN_TOKEN", testSecrets["INGRESS_ADMIN_TOKEN"]},
		{"forwarder", "FORWARDER_ADMIN_TOKEN", testSecrets["FORWARDER_ADMIN_TOKEN"]},
	}
	for _, w := range want {
		if got := env(w.service)[w.variable]; got != w.value {
			t.Errorf("%s: %s = %q, want %q from the env file", w.service, w.variable, got, w.value)
		}
	}
	for _, svc := range []string{"ingress", "forwarder"} {
		u, err := url.Parse(env(svc)["AMQP_URL"])
		if err != nil {
			t.Errorf("%s: AMQP_URL: %v", svc, err)
			continue
		}
		pass, _ := u.User.Password()
		if u.User.Username() != testSecrets["RABBITMQ_DEFAULT_USER"] || pass != testSecrets["RABBITMQ_DEFAULT_PASS"] {
			t.Errorf("%s: AMQP_URL's credentials are not RabbitMQ's RABBITMQ_DEFAULT_USER/PASS", svc)
		}
	}
	keys := apiKeysMount(t, c)
	if keys.source != testSecrets["RELAY_API_KEYS_DIR"] {
		t.Errorf("the ingress's API keys come from %q, want RELAY_API_KEYS_DIR %q", keys.source, testSecrets["RELAY_API_KEYS_DIR"])
	}
}

// Without a .env, `docker compose up` must still work (the README's make up),
// on the demo values, each of which must also work: the signing secret a
// valid whsec_ secret shared by forwarder and stub, the demo key file there
// and readable by the ingress's uid 65532, the broker's user the services'.
func TestCompose_WithoutADotEnvRunsOnDemoValues(t *testing.T) {
	c := composeConfig(t, nil)
	fwd, stub := c.Services["forwarder"].Environment, c.Services["catering-stub"].Environment
	secret := fwd["CATERING_SIGNING_SECRET"]
	if secret == "" || secret != stub["STUB_SIGNING_SECRET"] {
		t.Errorf("forwarder signs with %q, the stub verifies with %q: want one secret", secret, stub["STUB_SIGNING_SECRET"])
	}
	raw, ok := strings.CutPrefix(secret, "whsec_")
	key, err := base64.StdEncoding.DecodeString(raw)
	if !ok || err != nil || len(key) < 24 || len(key) > 64 {
		t.Errorf("demo signing secret %q: want whsec_ and the base64 of 24 to 64 bytes (Standard Webhooks)", secret)
	}
	rabbit := c.Services["rabbitmq"].Environment
	for _, svc := range []string{"ingress", "forwarder"} {
		u, err := url.Parse(c.Services[svc].Environment["AMQP_URL"])
		if err != nil {
			t.Fatalf("%s: AMQP_URL: %v", svc, err)
		}
		pass, _ := u.User.Password()
		if u.User.Username() != rabbit["RABBITMQ_DEFAULT_USER"] || pass != rabbit["RABBITMQ_DEFAULT_PASS"] || u.Hostname() != "rabbitmq" {
			t.Errorf("%s: AMQP_URL %s does not log in as the broker's default user", svc, u.Redacted())
		}
	}
	keys := apiKeysMount(t, c)
	file := filepath.Join(keys.source, path.Base(c.Services["ingress"].Environment["INGRESS_API_KEYS_FILE"]))
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("the demo API keys: %v", err)
	}
	if fi.Mode().Perm()&0o004 == 0 {
		t.Errorf("%s has mode %v: the ingress (uid 65532) cannot read it through the bind mount", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	clients := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if name, key, ok := strings.Cut(line, ":"); !ok || name == "" || key == "" {
				t.Errorf("%s: %q is not name:key", file, line)
			}
			clients++
		}
	}
	if clients == 0 {
		t.Errorf("%s holds no client: every request would get 401", file)
	}
}

// apiKeysMount checks that the ingress reads INGRESS_API_KEYS_FILE from a
// read-only bind mount of a directory (a single-file mount pins the file
// an editor replaces, so rotation would not be seen), and returns it.
func apiKeysMount(t *testing.T, c composeFile) bindMount {
	t.Helper()
	ingress := c.Services["ingress"]
	file := ingress.Environment["INGRESS_API_KEYS_FILE"]
	if !path.IsAbs(file) {
		t.Fatalf("ingress: INGRESS_API_KEYS_FILE %q: want the absolute path of the mounted file", file)
	}
	for _, v := range ingress.Volumes {
		if m := parseVolume(t, v); m.target == path.Dir(file) {
			if !m.readOnly {
				t.Errorf("ingress: the API keys directory %s is mounted read-write", m.target)
			}
			return m
		}
	}
	t.Fatalf("ingress: no volume is mounted at %s, the directory of INGRESS_API_KEYS_FILE", path.Dir(file))
	return bindMount{}
}

// .env.example is the list of what a .env may set: every variable compose
// reads (either variant) is in it, it names none compose does not read, and
// compose renders both variants with it as it is.
func TestEnvExample_CoversEveryVariableComposeReads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	example := map[string]string{}
	mentioned := map[string]bool{}
	assignment := regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)
	for line := range strings.SplitSeq(string(b), "\n") {
		m := assignment.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		mentioned[m[2]] = true
		if m[1] == "" {
			example[m[2]] = m[3]
		}
	}
	read := composeVars(t)
	for _, v := range read {
		if !mentioned[v] {
			t.Errorf("the compose files read %s, which .env.example does not mention", v)
		}
	}
	for v := range mentioned {
		if !slices.Contains(read, v) {
			t.Errorf(".env.example sets %s, which no compose file reads", v)
		}
	}
	for _, v := range []string{"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS", "GRAFANA_ADMIN_PASSWORD", "CATERING_SIGNING_SECRET", "RELAY_API_KEYS_DIR", "RELAY_ERLANG_COOKIE"} {
		if _, ok := example[v]; !ok {
			t.Errorf(".env.example does not set %s", v)
		}
	}
	composeConfig(t, example)
	composeConfigFiles(t, cluster, example)
}

// A .env holds secrets: git must not take it, nor docker build's context.
func TestDotEnv_NeverCommittedNorSentToDocker(t *testing.T) {
	for file, want := range map[string][]string{
		".gitignore":    {"/.env", ".env"},
		".dockerignore": {".env", "/.env"},
	} {
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if !slices.ContainsFunc(want, func(w string) bool { return slices.Contains(lines, w) }) {
			t.Errorf("%s does not list .env", file)
		}
	}
}

// Compose's Prometheus scrapes each service on the port of its admin address,
// where /metrics is, and the ingress never on its public API port.
func TestPrometheus_ScrapesTheAdminPorts(t *testing.T) {
	c := composeConfig(t, nil)
	b, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			MetricsPath  string `yaml:"metrics_path"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	port := func(service, variable string) string {
		addr := c.Services[service].Environment[variable]
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("compose: %s: %s=%q: %v", service, variable, addr, err)
		}
		return p
	}
	for _, tc := range []struct{ service, adminVar, publicVar string }{
		{"ingress", "INGRESS_ADMIN_ADDR", "INGRESS_ADDR"},
		{"forwarder", "FORWARDER_ADMIN_ADDR", ""},
	} {
		found := false
		for _, sc := range cfg.ScrapeConfigs {
			for _, sd := range sc.DNSSDConfigs {
				if !slices.Contains(sd.Names, tc.service) {
					continue
				}
				found = true
				got := strconv.Itoa(sd.Port)
				if want := port(tc.service, tc.adminVar); got != want {
					t.Errorf("job %s scrapes %s on port %s, want its admin port %s (%s)", sc.JobName, tc.service, got, want, tc.adminVar)
				}
				if tc.publicVar != "" && got == port(tc.service, tc.publicVar) {
					t.Errorf("job %s scrapes the public port of %s", sc.JobName, tc.service)
				}
				if sc.JobName != tc.service {
					t.Errorf("job %q scrapes %s: name it %q, as the ServiceMonitor's jobs are", sc.JobName, tc.service, tc.service)
				}
				if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
					t.Errorf("job %s: metrics_path %s", sc.JobName, sc.MetricsPath)
				}
			}
		}
		if !found {
			t.Errorf("prometheus.yml does not scrape %s", tc.service)
		}
	}
}

// TestDockerfiles_BuildStageBuilds replays each build stage outside Docker.
func TestDockerfiles_BuildStageBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries; run without -short")
	}
	for name, port := range services {
		t.Run(name, func(t *testing.T) {
			df := parseDockerfile(t, filepath.Join(repoRoot, "deployments", name+".Dockerfile"))
			root := t.TempDir()
			env := append(os.Environ(), "GOFLAGS=-mod=readonly")
			// As docker build --build-arg VERSION=... would pass it.
			buildArgs := map[string]string{"VERSION": "v0.0.0-replay-" + name}
			workdir := "/"
			for _, step := range df.build {
				switch step.op {
				case "ENV":
					env = append(env, step.args...)
				case "ARG":
					env = append(env, step.args[0]+"="+df.argValue(step, buildArgs))
				case "WORKDIR":
					workdir = step.args[0]
					if err := os.MkdirAll(under(root, workdir), 0o755); err != nil {
						t.Fatal(err)
					}
				case "COPY":
					dest := step.args[len(step.args)-1]
					if !filepath.IsAbs(dest) {
						dest = filepath.Join(workdir, dest) + "/"
					}
					for _, src := range step.args[:len(step.args)-1] {
						copyInto(t, filepath.Join(repoRoot, src), under(root, dest), strings.HasSuffix(dest, "/"))
					}
				case "RUN":
					cmd := exec.Command("sh", "-c", rewritePaths(root, step.args[0]))
					cmd.Dir, cmd.Env = under(root, workdir), env
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("RUN %s (in %s): %v\n%s", step.args[0], workdir, err, out)
					}
				}
			}
			bin := under(root, df.copiedFromBuild)
			if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
				t.Fatalf("the runtime stage copies %s from the build stage, which did not produce it (%v)", df.copiedFromBuild, err)
			}
			if stamped[name] {
				b, err := os.ReadFile(bin)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(b, []byte(buildArgs["VERSION"])) {
					t.Errorf("built with --build-arg VERSION=%s, the binary does not carry it: is main.version set with -ldflags -X?", buildArgs["VERSION"])
				}
			}
			if df.expose != port {
				t.Errorf("EXPOSE %s, but %s listens on %s by default", df.expose, name, port)
			}
			if !strings.Contains(df.runtimeImage, "nonroot") {
				t.Errorf("runtime image %q does not run as non-root", df.runtimeImage)
			}
		})
	}
}

// stamped are the images whose binary has a main.version for VERSION.
var stamped = map[string]bool{"ingress": true, "forwarder": true}

// ociLabels are the annotations (opencontainers/image-spec, annotations.md)
// every image carries, with the value each must have; "" for any non-empty.
var ociLabels = map[string]string{
	"org.opencontainers.image.title":       "",
	"org.opencontainers.image.description": "",
	"org.opencontainers.image.source":      "https://github.com/railco/relay",
	"org.opencontainers.image.version":     "${VERSION}",
	"org.opencontainers.image.revision":    "${REVISION}",
	"org.opencontainers.image.licenses":    "",
}

// The images are labelled with what they are and which commit they hold,
// from build arguments with defaults, so a plain docker build works too.
func TestDockerfiles_OCILabels(t *testing.T) {
	for name := range services {
		t.Run(name, func(t *testing.T) {
			df := parseDockerfile(t, filepath.Join(repoRoot, "deployments", name+".Dockerfile"))
			for key, want := range ociLabels {
				got, ok := df.labels[key]
				switch {
				case !ok || got == "":
					t.Errorf("the runtime stage has no LABEL %s", key)
				case want != "" && got != want:
					t.Errorf("LABEL %s=%q, want %q", key, got, want)
				}
			}
			if title := df.labels["org.opencontainers.image.title"]; !strings.Contains(title, name) {
				t.Errorf("LABEL org.opencontainers.image.title=%q does not name %s", title, name)
			}
			for _, arg := range []string{"VERSION", "REVISION"} {
				// An ARG is visible in a stage only if declared there; a
				// global one (before FROM) supplies the default.
				if _, ok := df.globalArgs[arg]; !ok || df.globalArgs[arg] == "" {
					t.Errorf("no ARG %s=<default> before the first FROM: a plain docker build would label the image with an empty %s", arg, arg)
				}
				if !slices.Contains(df.runtimeArgs, arg) {
					t.Errorf("the runtime stage does not declare ARG %s: its LABEL would expand ${%s} to nothing", arg, arg)
				}
			}
		})
	}
}

type step struct {
	op   string
	args []string // ENV: NAME=value pairs; ARG: NAME and, if given, its default
}

type dockerfile struct {
	build           []step // the first stage's instructions
	runtimeImage    string
	copiedFromBuild string // the path COPY --from=build takes
	expose          string
	globalArgs      map[string]string // ARGs before the first FROM, with their defaults
	runtimeArgs     []string          // ARGs the runtime stage declares
	labels          map[string]string // the runtime stage's LABELs
}

// argValue is what an ARG step of the build stage holds: the build argument
// when given, else its own default, else the global ARG's default.
func (df dockerfile) argValue(s step, buildArgs map[string]string) string {
	if v, ok := buildArgs[s.args[0]]; ok {
		return v
	}
	if len(s.args) > 1 {
		return s.args[1]
	}
	return df.globalArgs[s.args[0]]
}

var (
	envPair   = regexp.MustCompile(`(\w+)=(\S+)`)
	labelPair = regexp.MustCompile(`([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)`)
)

// parseArg splits ARG's operand: NAME or NAME=default.
func parseArg(rest string) []string {
	name, def, ok := strings.Cut(strings.TrimSpace(rest), "=")
	if !ok {
		return []string{name}
	}
	return []string{name, strings.Trim(def, `"`)}
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	df := dockerfile{globalArgs: map[string]string{}, labels: map[string]string{}}
	stage := 0
	sc := bufio.NewScanner(f)
	var continued string // an instruction continued with a trailing backslash
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cut, ok := strings.CutSuffix(line, "\\"); ok {
			continued += cut + " "
			continue
		}
		line, continued = continued+line, ""
		op, rest, _ := strings.Cut(line, " ")
		switch op = strings.ToUpper(op); {
		case stage == 0 && op == "ARG":
			a := parseArg(rest)
			df.globalArgs[a[0]] = ""
			if len(a) > 1 {
				df.globalArgs[a[0]] = a[1]
			}
		case stage == 1 && op == "ARG":
			df.build = append(df.build, step{op, parseArg(rest)})
		case stage == 2 && op == "ARG":
			df.runtimeArgs = append(df.runtimeArgs, parseArg(rest)[0])
		case stage == 2 && op == "LABEL":
			for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
				v := m[2]
				if uq, err := strconv.Unquote(v); err == nil {
					v = uq
				}
				df.labels[m[1]] = v
			}
		case op == "FROM":
			stage++
			if stage == 2 {
				df.runtimeImage = strings.Fields(rest)[0]
			}
		case stage == 1 && op == "ENV":
			var pairs []string
			for _, m := range envPair.FindAllStringSubmatch(rest, -1) {
				pairs = append(pairs, m[1]+"="+m[2])
			}
			df.build = append(df.build, step{op, pairs})
		case stage == 1 && op == "RUN":
			df.build = append(df.build, step{op, []string{rest}})
		case stage == 1 && (op == "COPY" || op == "WORKDIR"):
			df.build = append(df.build, step{op, strings.Fields(rest)})
		case stage == 2 && op == "COPY" && strings.HasPrefix(rest, "--from=build "):
			df.copiedFromBuild = strings.Fields(rest)[1]
		case stage == 2 && op == "EXPOSE":
			df.expose = strings.TrimSpace(rest)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(df.build) == 0 || df.copiedFromBuild == "" {
		t.Fatalf("%s: no build stage or no COPY --from=build", path)
	}
	return df
}

// under maps an absolute path of the image to the scratch directory.
func under(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

var absPath = regexp.MustCompile(`(^|\s|=)(/(?:src|out)\b)`)

func rewritePaths(root, cmd string) string {
	return absPath.ReplaceAllString(cmd, "${1}"+root+"${2}")
}

// copyInto copies src (a file or a directory's contents) as COPY does.
func copyInto(t *testing.T, src, dest string, destIsDir bool) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if !fi.IsDir() {
		target := dest
		if destIsDir {
			target = filepath.Join(dest, filepath.Base(src))
		}
		copyFile(t, src, target)
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		copyFile(t, p, filepath.Join(dest, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeYAML(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse docker-compose config output: %v", err)
	}
}
