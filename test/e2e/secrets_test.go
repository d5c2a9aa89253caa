package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/topology"
)

// No secret relay is given ever reaches a log line: a full run with every
// secret configured, requests that succeed and that fail, a configuration
// error, then every line every process wrote is searched for each secret.
func TestSecrets_NeverInAnyLog(t *testing.T) {
	random := func(prefix string) string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return prefix + hex.EncodeToString(b)
	}
	signingKey := make([]byte, 32)
	_, _ = rand.Read(signingKey)
	secrets := map[string]string{
		"AMQP password":         random("amqp-pw-"),
		"API key":               random("api-key-"),
		"ingress admin token":   random("ingress-token-"),
		"forwarder admin token": random("forwarder-token-"),
		"backend password":      random("backend-pw-"),
		"signing secret":        "whsec_" + base64.StdEncoding.EncodeToString(signingKey),
	}
	secrets["signing key"] = strings.TrimPrefix(secrets["signing secret"], "whsec_")

	// A broker user of the test's own, with a password worth hiding.
	admin := brokertest.Admin(t)
	user := brokertest.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PutUser(ctx, user, secrets["AMQP password"], "policymaker"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.DeleteUser(context.Background(), user) })
	amqpURL := "amqp://" + user + ":" + secrets["AMQP password"] + "@127.0.0.1:5672/"

	prefix := brokertest.Prefix(t)
	// Events on, as the services have them by default: the stream goes too.
	topo := topology.New(brokertest.WithEvents(topology.Config{Prefix: prefix, MaxAttempts: 4, RetryInitial: time.Second, RetryMultiplier: 5,
		RetryMax: 10 * time.Minute, DeliveryLimit: 100}))
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# clients\nrailco:"+secrets["API key"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stub := start(t, "catering-stub", map[string]string{"STUB_SIGNING_SECRET": secrets["signing secret"], "LOG_LEVEL": "debug"}, "STUB_ADDR", "STUB_ADDR_FILE")
	common := map[string]string{"AMQP_URL": amqpURL, "TOPOLOGY_PREFIX": prefix, "LOG_LEVEL": "debug"}
	fenv := maps.Clone(common)
	fenv["CATERING_SERVICE_EP"] = "http://relay:" + secrets["backend password"] + "@" + stub.addr + "/catering"
	fenv["CATERING_SIGNING_SECRET"] = secrets["signing secret"]
	fenv["FORWARDER_ADMIN_TOKEN"] = secrets["forwarder admin token"]
	fwd := start(t, "forwarder", fenv, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ienv := maps.Clone(common)
	ienv["INGRESS_API_KEYS_FILE"] = keys
	// The admin port too is chosen by the ingress itself: a port picked
	// here and freed could be taken by another process before it binds.
	adminFile := filepath.Join(t.TempDir(), "ingress-admin.addr")
	ienv["INGRESS_ADMIN_ADDR"] = "127.0.0.1:0"
	ienv["INGRESS_ADMIN_ADDR_FILE"] = adminFile
	ienv["INGRESS_ADMIN_TOKEN"] = secrets["ingress admin token"]
	ing := start(t, "ingress", ienv, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	adminAddr := ing.waitAddr(t, adminFile)

	// Refused, then accepted and delivered, signed.
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong-" + secrets["API key"]}} {
		if resp, out := post(t, ing.addr, registration("refused"), h); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST with %v: %d %v, want 401", h, resp.StatusCode, out)
		}
	}
	auth := map[string]string{"Authorization": "Bearer " + secrets["API key"]}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, out := post(t, ing.addr, registration("secret-run"), auth)
		if resp.StatusCode == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST with the key: %d %v", resp.StatusCode, out)
		}
		time.Sleep(100 * time.Millisecond) // the ingress is still connecting: the client's retry
	}
	brokertest.Eventually(t, 15*time.Second, "the signed registration delivered", func() bool {
		return getReceived(t, stub.addr).Count == 1
	})
	// The operational endpoints, with and without their tokens.
	for _, c := range []struct{ addr, token string }{{adminAddr, secrets["ingress admin token"]}, {fwd.addr, secrets["forwarder admin token"]}} {
		if code := getWithToken(t, "http://"+c.addr+"/metrics", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s/metrics without the token: %d, want 401", c.addr, code)
		}
		if code := getWithToken(t, "http://"+c.addr+"/metrics", c.token); code != http.StatusOK {
			t.Errorf("GET %s/metrics with the token: %d, want 200", c.addr, code)
		}
	}
	// The backend goes away: the attempts' errors name the endpoint.
	mustStopIn(t, stub)
	if resp, out := post(t, ing.addr, registration("backend-gone"), auth); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST while the backend is down: %d %v", resp.StatusCode, out)
	}
	brokertest.Eventually(t, 15*time.Second, "a failed attempt in the forwarder's log", func() bool {
		return strings.Contains(fwd.log.String(), `"outcome":"not-counted"`)
	})
	for _, p := range []*process{ing, fwd} {
		mustStopIn(t, p)
	}

	// A wrong broker password: the connection errors name the broker.
	secrets["wrong AMQP password"] = random("wrong-amqp-pw-")
	wenv := maps.Clone(ienv)
	wenv["AMQP_URL"] = "amqp://" + user + ":" + secrets["wrong AMQP password"] + "@127.0.0.1:5672/"
	wenv["INGRESS_ADMIN_ADDR"] = "127.0.0.1:0"
	wrong := start(t, "ingress", wenv, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	brokertest.Eventually(t, 15*time.Second, "the refused broker login in the log", func() bool {
		return strings.Contains(wrong.log.String(), "reconnecting")
	})
	mustStopIn(t, wrong)
	// What a Basic Authorization header would carry.
	secrets["backend credentials, base64"] = base64.StdEncoding.EncodeToString([]byte("relay:" + secrets["backend password"]))

	// A configuration error names the setting, not its secret.
	bad := maps.Clone(fenv)
	bad["FORWARDER_CONCURRENCY"] = "0"
	bad["FORWARDER_ADMIN_ADDR"] = "127.0.0.1:0"
	failed := start(t, "forwarder", bad, "", "")
	<-failed.done
	if failed.err == nil {
		t.Error("the forwarder started with FORWARDER_CONCURRENCY=0")
	}

	for _, p := range []*process{ing, fwd, stub, wrong, failed} {
		logs := p.log.String()
		if logs == "" {
			t.Errorf("%s wrote no log at all", p.name)
		}
		for what, secret := range secrets {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s log holds the %s", p.name, what)
			}
		}
	}
}

func getWithToken(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func mustStopIn(t *testing.T, p *process) {
	t.Helper()
	if err := p.stop(t, 20*time.Second); err != nil {
		t.Errorf("%s exit: %v", p.name, err)
	}
}
