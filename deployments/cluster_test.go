package deployments

import (
	"bufio"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The cluster variant, docker-compose.cluster.yml on top of
// docker-compose.yml: three RabbitMQ nodes that form one cluster by
// themselves, and the services pointed at all three. Without a Docker engine
// these tests check what docker-compose renders, the peer discovery
// configuration the nodes read, and the nodes' entrypoint, run in a scratch
// directory.

// rabbitNode is a RabbitMQ service of a rendered compose file.
type rabbitNode struct {
	service, hostname string
	data              bindMount   // the volume at /var/lib/rabbitmq
	conf              []bindMount // files mounted into /etc/rabbitmq/conf.d
}

// rabbitDataDir is the image's data directory, also its user's HOME: where
// the node keeps its data and looks for the Erlang cookie.
const rabbitDataDir = "/var/lib/rabbitmq"

// rabbitNodes returns the services that run RabbitMQ, by service name.
func rabbitNodes(t *testing.T, c composeFile) []rabbitNode {
	t.Helper()
	var nodes []rabbitNode
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		if !strings.HasPrefix(s.Image, "rabbitmq:") {
			continue
		}
		n := rabbitNode{service: name, hostname: s.Hostname}
		for _, v := range s.Volumes {
			m := parseVolume(t, v)
			switch {
			case m.target == rabbitDataDir:
				n.data = m
			case path.Dir(m.target) == "/etc/rabbitmq/conf.d":
				n.conf = append(n.conf, m)
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// rabbitConf reads a rabbitmq.conf file: key = value lines, # comments.
func rabbitConf(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conf := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key = value", file, line)
		}
		conf[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return conf
}

// splitAMQPURLs splits a comma-separated AMQP_URL. The test's passwords hold
// no comma, so a plain split will do.
func splitAMQPURLs(raw string) []string { return strings.Split(raw, ",") }

// Three RabbitMQ 4 nodes, each with a fixed name the others can resolve, a
// volume of its own and a healthcheck, and all reading classic config peer
// discovery that lists exactly the three.
func TestComposeCluster_ThreeNodesFormOneClusterByThemselves(t *testing.T) {
	c := composeConfigFiles(t, cluster, nil)
	nodes := rabbitNodes(t, c)
	if len(nodes) != 3 {
		t.Fatalf("%d RabbitMQ services, want 3", len(nodes))
	}
	var want []string // the node names, rabbit@<hostname>
	volumes := map[string]string{}
	for _, n := range nodes {
		s := c.Services[n.service]
		if !strings.HasPrefix(s.Image, "rabbitmq:4") || !strings.Contains(s.Image, "management") {
			t.Errorf("%s: image %q, want a 4.x management image like the single node's", n.service, s.Image)
		}
		// A node's name, and the directory of its data, come from its host
		// name: without a fixed one it would be a new node at every start.
		if n.hostname == "" {
			t.Errorf("%s has no fixed hostname", n.service)
			continue
		}
		// The others reach it by that name: compose's DNS knows services by
		// their name and their aliases, not by their hostname.
		if n.hostname != n.service && (s.Networks["default"] == nil || !slices.Contains(s.Networks["default"].Aliases, n.hostname)) {
			t.Errorf("%s: hostname %s is neither its service name nor an alias on the default network: the other nodes cannot resolve it", n.service, n.hostname)
		}
		want = append(want, "rabbit@"+n.hostname)
		if len(s.Healthcheck) == 0 {
			t.Errorf("%s has no healthcheck: the services cannot wait for it", n.service)
		}
		_, declared := c.Volumes[n.data.source]
		switch {
		case !declared:
			t.Errorf("%s: %s is not on a named volume (%q): the node's data would not survive down/up", n.service, rabbitDataDir, n.data.source)
		case n.data.source == "rabbitmq-data":
			t.Errorf("%s keeps its data in rabbitmq-data, the single node's volume", n.service)
		case volumes[n.data.source] != "":
			t.Errorf("%s and %s share the volume %s", volumes[n.data.source], n.service, n.data.source)
		}
		volumes[n.data.source] = n.service
	}
	if slices.Sort(want); len(slices.Compact(slices.Clone(want))) != len(want) {
		t.Errorf("node names %v: two nodes have one name", want)
	}
	for _, n := range nodes {
		var discovery string
		var peers []string
		for _, m := range n.conf {
			if !m.readOnly {
				t.Errorf("%s: %s is mounted read-write", n.service, m.target)
			}
			if !strings.HasSuffix(m.target, ".conf") {
				t.Errorf("%s: %s is not read by RabbitMQ, which takes *.conf from conf.d", n.service, m.target)
			}
			for k, v := range rabbitConf(t, m.source) {
				switch {
				case k == "cluster_formation.peer_discovery_backend":
					discovery = v
				case strings.HasPrefix(k, "cluster_formation.classic_config.nodes."):
					peers = append(peers, v)
				}
			}
		}
		if !slices.Contains([]string{"classic_config", "classic", "config", "rabbit_peer_discovery_classic_config"}, discovery) {
			t.Errorf("%s: cluster_formation.peer_discovery_backend = %q, want classic_config", n.service, discovery)
		}
		if slices.Sort(peers); !slices.Equal(peers, want) {
			t.Errorf("%s: cluster_formation.classic_config.nodes = %v, want the three nodes %v", n.service, peers, want)
		}
	}
}

// The nodes authenticate to each other, and the CLI tools (the healthcheck)
// to their node, with the Erlang cookie: one for all three, from .env, put
// where RabbitMQ reads it ($HOME/.erlang.cookie, owner-only) by the
// entrypoint, which then starts the image's own. RABBITMQ_ERLANG_COOKIE is
// deprecated (RabbitMQ 3.9 and later warn about it).
func TestComposeCluster_NodesShareAnErlangCookie(t *testing.T) {
	const cookie = "test-cookie-0123456789abcdef"
	c := composeConfigFiles(t, cluster, map[string]string{"RELAY_ERLANG_COOKIE": cookie})
	for _, n := range rabbitNodes(t, c) {
		s := c.Services[n.service]
		if got := s.Environment["RELAY_ERLANG_COOKIE"]; got != cookie {
			t.Errorf("%s: RELAY_ERLANG_COOKIE = %q, want %q from the env file", n.service, got, cookie)
		}
		if _, ok := s.Environment["RABBITMQ_ERLANG_COOKIE"]; ok {
			t.Errorf("%s sets RABBITMQ_ERLANG_COOKIE, which is deprecated: write the cookie file", n.service)
		}
		t.Run(n.service, func(t *testing.T) { runNodeEntrypoint(t, s.Entrypoint, cookie) })
	}
	demo := composeConfigFiles(t, cluster, nil)
	var cookies []string
	for _, n := range rabbitNodes(t, demo) {
		cookies = append(cookies, demo.Services[n.service].Environment["RELAY_ERLANG_COOKIE"])
	}
	if len(cookies) != 3 || cookies[0] == "" || len(slices.Compact(slices.Clone(cookies))) != 1 {
		t.Errorf("without a .env the nodes' cookies are %q: want one demo cookie for all", cookies)
	}
}

// runNodeEntrypoint runs a node's entrypoint with the data directory in a
// scratch directory and docker-entrypoint.sh replaced by a script that
// records what it was started with; twice, the second time over the first
// run's cookie file, as on a restart with a new cookie.
func runNodeEntrypoint(t *testing.T, entrypoint []string, cookie string) {
	if len(entrypoint) < 2 || !slices.Contains([]string{"bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash"}, entrypoint[0]) {
		t.Fatalf("entrypoint %q: want a shell script that writes the cookie and starts docker-entrypoint.sh", entrypoint)
	}
	home, bin := t.TempDir(), t.TempDir()
	recorded := filepath.Join(bin, "recorded")
	stub := "#!/bin/sh\n{ echo \"args=$*\"; env; } > " + recorded + "\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-entrypoint.sh"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(entrypoint[1:])
	for i, a := range args {
		// docker-compose 1.x prints a literal $ as $$ (compose's escape).
		args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "$$", "$"), rabbitDataDir, home)
	}
	file := filepath.Join(home, ".erlang.cookie")
	for _, c := range []string{"an-older-cookie", cookie} {
		cmd := exec.Command(entrypoint[0], args...)
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home, "RELAY_ERLANG_COOKIE=" + c}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the entrypoint failed: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no cookie file at $HOME/.erlang.cookie: %v", err)
	}
	if string(b) != cookie {
		t.Errorf("cookie file holds %q, want %q", b, cookie)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("cookie file mode %v: Erlang refuses a cookie others may read", fi.Mode().Perm())
	}
	rec, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatalf("docker-entrypoint.sh was not started: %v", err)
	}
	if !strings.Contains(string(rec), "args=rabbitmq-server\n") {
		t.Errorf("docker-entrypoint.sh started with %q, want rabbitmq-server (the image's CMD)", strings.SplitN(string(rec), "\n", 2)[0])
	}
	if strings.Contains(string(rec), cookie) {
		t.Error("the cookie is still in the environment of the server")
	}
}

// The ingress and the forwarder get every node in AMQP_URL, as the broker's
// user, and start once all three nodes are healthy; the credentials and the
// cookie come from the env file like the single node's.
func TestComposeCluster_ServicesUseEveryNode(t *testing.T) {
	env := maps.Clone(testSecrets)
	env["RELAY_ERLANG_COOKIE"] = "test-cookie-from-the-env-file-42"
	c := composeConfigFiles(t, cluster, env)
	nodes := rabbitNodes(t, c)
	var hosts []string
	ui := 0
	for _, n := range nodes {
		hosts = append(hosts, n.hostname)
		e := c.Services[n.service].Environment
		if e["RABBITMQ_DEFAULT_USER"] != env["RABBITMQ_DEFAULT_USER"] || e["RABBITMQ_DEFAULT_PASS"] != env["RABBITMQ_DEFAULT_PASS"] {
			t.Errorf("%s: the broker's user is not RABBITMQ_DEFAULT_USER/PASS from the env file (any node may be the one that creates it)", n.service)
		}
		if e["RELAY_ERLANG_COOKIE"] != env["RELAY_ERLANG_COOKIE"] {
			t.Errorf("%s: the Erlang cookie does not come from the env file", n.service)
		}
		for _, raw := range c.Services[n.service].Ports {
			if p := parsePort(t, raw); p.target == "15672" && p.hostIP == "127.0.0.1" {
				ui++
			}
		}
	}
	if ui != 1 {
		t.Errorf("the management UI is published on 127.0.0.1 by %d nodes, want one", ui)
	}
	slices.Sort(hosts)
	for _, svc := range []string{"ingress", "forwarder"} {
		raw := c.Services[svc].Environment["AMQP_URL"]
		var got []string
		for _, u := range splitAMQPURLs(raw) {
			parsed, err := url.Parse(u)
			if err != nil || parsed.Scheme != "amqp" {
				t.Errorf("%s: AMQP_URL holds %q, not an amqp:// URL", svc, u)
				continue
			}
			pass, _ := parsed.User.Password()
			if parsed.User.Username() != env["RABBITMQ_DEFAULT_USER"] || pass != env["RABBITMQ_DEFAULT_PASS"] {
				t.Errorf("%s: %s does not log in as RABBITMQ_DEFAULT_USER/PASS", svc, parsed.Redacted())
			}
			if parsed.Port() != "5672" {
				t.Errorf("%s: %s is not the nodes' AMQP port 5672", svc, parsed.Redacted())
			}
			got = append(got, parsed.Hostname())
		}
		if slices.Sort(got); !slices.Equal(got, hosts) {
			t.Errorf("%s: AMQP_URL names %v, want the three nodes %v, comma-separated", svc, got, hosts)
		}
		for _, n := range nodes {
			if cond := c.Services[svc].DependsOn[n.service].Condition; cond != "service_healthy" {
				t.Errorf("%s does not wait for a healthy %s (condition %q)", svc, n.service, cond)
			}
		}
	}
}

// Plain `docker compose up` stays the single node; the cluster file changes
// the broker, the services' AMQP_URL and what they wait for, nothing else.
func TestComposeCluster_LeavesTheSingleNodeStackAsItIs(t *testing.T) {
	single, clustered := composeConfig(t, nil), composeConfigFiles(t, cluster, nil)
	if nodes := rabbitNodes(t, single); len(nodes) != 1 || nodes[0].service != "rabbitmq" || nodes[0].data.source != "rabbitmq-data" || len(nodes[0].conf) != 0 {
		t.Errorf("docker-compose.yml alone runs %+v, want the one node rabbitmq on rabbitmq-data", nodes)
	}
	for _, svc := range []string{"ingress", "forwarder"} {
		if urls := splitAMQPURLs(single.Services[svc].Environment["AMQP_URL"]); len(urls) != 1 {
			t.Errorf("docker-compose.yml alone: %s's AMQP_URL holds %d URLs, want the single node's", svc, len(urls))
		}
	}
	for name, s := range single.Services {
		cs, ok := clustered.Services[name]
		switch {
		case !ok:
			t.Errorf("the cluster variant has no %s", name)
		case name == "rabbitmq":
		case name == "ingress" || name == "forwarder":
			s.Environment = maps.Clone(s.Environment)
			s.Environment["AMQP_URL"] = cs.Environment["AMQP_URL"]
			s.DependsOn = cs.DependsOn
			if !reflect.DeepEqual(s, cs) {
				t.Errorf("the cluster variant changes %s beyond AMQP_URL and depends_on", name)
			}
		case !reflect.DeepEqual(s, cs):
			t.Errorf("the cluster variant changes %s", name)
		}
	}
}
