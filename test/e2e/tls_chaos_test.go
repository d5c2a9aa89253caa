//go:build chaos

package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// amqps:// end to end. The suite's node serves AMQP over TLS and asks for a
// client certificate (see startPrivateBroker). With the CA and the client
// certificate, the real ingress, forwarder and relayctl connect over TLS, a
// registration crosses the broker to the stub, and the forwarder and
// relayctl trust the https management API with the same CA. Without the CA
// they refuse the node's certificate; without a client certificate, or with
// one of another CA, the node refuses them: the ingress answers 503 and
// stores nothing, relayctl fails.
func TestChaos_AMQPSWithCAAndClientCertificate(t *testing.T) {
	b := chaosBroker(t)
	began := time.Now()
	cfg := fastRetries()
	topo := chaosTopology(t, b, cfg)
	mtls := envFor(b, topo, topologyEnv(cfg))
	mtls["AMQP_URL"] = b.TLSURL()
	mtls["AMQP_CA_FILE"] = b.certs.CA
	mtls["AMQP_CLIENT_CERT_FILE"] = b.certs.ClientCert
	mtls["AMQP_CLIENT_KEY_FILE"] = b.certs.ClientKey
	// The API is where an amqps URL puts it (https, the same CA), on the
	// node's own port rather than 15671.
	mtls["RABBITMQ_MANAGEMENT_URL"] = b.ManagementURL()
	without := func(vars ...string) map[string]string {
		env := clone(mtls)
		for _, v := range vars {
			delete(env, v)
		}
		return env
	}

	// A whole other PKI, whose client certificate the node has no reason to trust.
	stranger, err := writeBrokerCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	strangerEnv := clone(mtls)
	strangerEnv["AMQP_CLIENT_CERT_FILE"] = stranger.ClientCert
	strangerEnv["AMQP_CLIENT_KEY_FILE"] = stranger.ClientKey

	stub := start(t, "catering-stub", map[string]string{}, "STUB_ADDR", "STUB_ADDR_FILE")
	withEP := func(env map[string]string) map[string]string {
		env["CATERING_SERVICE_EP"] = "http://" + stub.addr + "/catering"
		return env
	}
	fwd := start(t, "forwarder", withEP(clone(mtls)), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := startIngress(t, mtls)

	// The refused ones start now and retry in the background meanwhile.
	refusals := []struct {
		name string
		env  map[string]string
		// what the client's error says (any of them), and what the node logs
		client []string
		node   string
	}{
		{
			name: "without AMQP_CA_FILE", env: without("AMQP_CA_FILE"),
			client: []string{"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
			node:   "received CLIENT ALERT: Fatal - Bad Certificate",
		},
		{
			// TLS 1.3 ends the client's handshake before the node has read
			// its (empty) certificate: the node's alert comes after, and when
			// the node's reset overtakes it the client sees only the reset.
			name: "without the client certificate", env: without("AMQP_CLIENT_CERT_FILE", "AMQP_CLIENT_KEY_FILE"),
			client: []string{"remote error: tls: certificate required", "connection reset by peer"},
			node:   "generated SERVER ALERT: Fatal - Certificate required",
		},
		{
			name: "with a client certificate of another CA", env: strangerEnv,
			client: []string{"remote error: tls: unknown certificate authority", "connection reset by peer"},
			node:   "generated SERVER ALERT: Fatal - Unknown CA",
		},
	}
	type refused struct{ ingress, forwarder *process }
	procs := make([]refused, len(refusals))
	for i, r := range refusals {
		procs[i] = refused{
			ingress:   startIngress(t, r.env),
			forwarder: start(t, "forwarder", withEP(clone(r.env)), "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE"),
		}
	}

	// TLS end to end.
	const key = "amqps-1"
	resp, out := post(t, ing.addr, registration("tls-1"), map[string]string{"Idempotency-Key": key})
	for deadline := time.Now().Add(15 * time.Second); resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // the client's retry while the ingress connects
		resp, out = post(t, ing.addr, registration("tls-1"), map[string]string{"Idempotency-Key": key})
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST over amqps answered %d %v, want 202", resp.StatusCode, out)
	}
	accepted := time.Since(began)
	waitReceived(t, stub.addr, key, 15*time.Second)
	t.Logf("amqps: accepted after %s, at the stub after %s", accepted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// The node confirms what the services' logs cannot: their connections
	// are TLS and present the suite's client certificate.
	conns := b.connections(t)
	for _, name := range []string{"relay-ingress", "relay-forwarder", "relay-forwarder-publish"} {
		c, ok := conns[name]
		switch {
		case !ok:
			t.Errorf("no connection %q on the node (have %v)", name, conns)
		case !c.SSL || !strings.Contains(c.PeerCertSubject, "CN=client"):
			t.Errorf("connection %q: ssl=%v peer certificate %q, want TLS with CN=client", name, c.SSL, c.PeerCertSubject)
		default:
			t.Logf("%s: %s, client certificate %s", name, c.SSLProtocol, c.PeerCertSubject)
		}
	}

	// The forwarder trusted the management API's certificate with the CA.
	waitLog(t, fwd, "main queue bounded", []string{b.ManagementURL()}, 10*time.Second)

	// relayctl, with the same environment, over the same listener.
	relayctl := buildRelayctl(t)
	stdout, stderr, err := runRelayctl(relayctl, mtls, "stats", "--json")
	if err != nil {
		t.Fatalf("relayctl stats over amqps: %v\n%s", err, stderr)
	}
	var stats statsOut
	if err := json.Unmarshal(stdout, &stats); err != nil || len(stats.Queues) == 0 || !stats.Queues[0].Exists || stats.Queues[0].Name != topo.Queue {
		t.Fatalf("relayctl stats over amqps: %v\n%s", err, stdout)
	}
	if !stats.Management.Reachable {
		t.Errorf("relayctl stats: management API over https not reachable: %s\n%s", stats.Management.Error, stderr)
	}

	for i, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			p := procs[i]
			for _, proc := range []*process{p.ingress, p.forwarder} {
				waitLog(t, proc, "broker connection lost; reconnecting", r.client, 15*time.Second)
			}
			for deadline := time.Now().Add(5 * time.Second); !b.logged(r.node); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the node never logged %q:\n%s", r.node, b.logTail())
				}
			}
			resp, out := post(t, p.ingress.addr, registration("tls-refused"), nil)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("POST answered %d %v, want 503", resp.StatusCode, out)
			}
			_, stderr, err := runRelayctl(relayctl, r.env, "stats")
			if err == nil || !containsAny(string(stderr), r.client) {
				t.Errorf("relayctl stats: %v, stderr %q, want a failure that says one of %q", err, stderr, r.client)
			}
		})
	}
	if got := getReceived(t, stub.addr); got.Count != 1 {
		t.Errorf("the stub received %d registrations, want 1: the refused ingresses stored nothing", got.Count)
	}
	t.Logf("amqps scenario took %s", time.Since(began).Round(time.Millisecond))
}

// startIngress starts an ingress on a copy of env. Three run at once here:
// each gets its own admin port too.
func startIngress(t *testing.T, env map[string]string) *process {
	t.Helper()
	env = clone(env)
	env["INGRESS_ADMIN_ADDR"] = "127.0.0.1:0"
	return start(t, "ingress", env, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
}

// waitReceived waits until the stub got a delivery with Idempotency-Key key.
func waitReceived(t *testing.T, stubAddr, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, it := range getReceived(t, stubAddr).Items {
			if it.IdempotencyKey == key {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the stub within %s", key, timeout)
		}
		time.Sleep(50 * time.Millisecond) // the stub has no event to wait on
	}
}

// waitLog waits until a line of p's log holds msg and one of details.
func waitLog(t *testing.T, p *process, msg string, details []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(line, msg) && containsAny(line, details) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q with one of %q within %s:\n%s", p.name, msg, details, timeout, p.log.String())
		}
		time.Sleep(50 * time.Millisecond) // the log has no event to wait on
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// statsOut is the part of relayctl stats --json the test reads.
type statsOut struct {
	Queues []struct {
		Name   string `json:"name"`
		Exists bool   `json:"exists"`
	} `json:"queues"`
	Management struct {
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
	} `json:"management"`
}

// runRelayctl runs relayctl with env only (and PATH), as the services run.
func runRelayctl(path string, env map[string]string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}
