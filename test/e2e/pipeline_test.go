package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/topology"
)

// stack is the whole system for one test, on its own topology names.
type stack struct {
	ingress, forwarder, stub *process
	topo                     *topology.Topology
}

func startStack(t *testing.T, extra map[string]string) *stack {
	t.Helper()
	prefix := brokertest.Prefix(t)
	// Events on, the services' default, unless the test turns them off:
	// the stream is deleted with the rest.
	topo := topology.New(topology.Config{Prefix: prefix, MaxAttempts: 4, RetryInitial: time.Second, RetryMultiplier: 5,
		RetryMax: 10 * time.Minute, DeliveryLimit: 100, Events: extra["EVENTS"] != "off"})
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	indexPath := filepath.Join(t.TempDir(), "ingress-index.db")

	common := func() map[string]string {
		env := map[string]string{"AMQP_URL": brokertest.URL(), "TOPOLOGY_PREFIX": prefix, "INGRESS_INDEX_PATH": indexPath, "EVENTS": "on"}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	s := &stack{topo: topo}
	s.stub = start(t, "catering-stub", map[string]string{}, "STUB_ADDR", "STUB_ADDR_FILE")
	fenv := common()
	fenv["CATERING_SERVICE_EP"] = "http://" + s.stub.addr + "/catering"
	s.forwarder = start(t, "forwarder", fenv, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	s.ingress = start(t, "ingress", common(), "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	return s
}

// post sends body as the seed's curl does: POST, Content-Type application/json.
func post(t *testing.T, addr string, body []byte, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/catering/register", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp, out
}

// postUntilAccepted retries while the ingress is still connecting (503).
func postUntilAccepted(t *testing.T, addr string, body []byte) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, out := post(t, addr, body, nil)
		if resp.StatusCode == http.StatusAccepted {
			return out
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("POST answered %d %v, want 202", resp.StatusCode, out)
		}
		time.Sleep(100 * time.Millisecond) // the client's retry, as Retry-After asks
	}
}

// The seed's curl gets 202, and the backend receives the very bytes sent,
// with the message id as Idempotency-Key.
func TestSeedRequest_ReachesBackendByteIdentical(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, nil)

	out := postUntilAccepted(t, s.ingress.addr, seed)
	id, _ := out["id"].(string)
	if id == "" || out["status"] != "accepted" {
		t.Fatalf("answer %v, want {id, status: accepted}", out)
	}

	var got received
	brokertest.Eventually(t, 15*time.Second, "the stub to receive the registration", func() bool {
		got = getReceived(t, s.stub.addr)
		return got.Count > 0
	})
	item := got.Items[0]
	if item.Body != string(seed) {
		t.Errorf("backend received\n%q\nwant the exact request bytes\n%q", item.Body, seed)
	}
	if item.IdempotencyKey != id || item.Attempt != 1 || item.ContentType != "application/json" {
		t.Errorf("backend saw key %q attempt %d type %q; want %q, 1, application/json", item.IdempotencyKey, item.Attempt, item.ContentType, id)
	}

	for _, p := range []*process{s.ingress, s.forwarder, s.stub} {
		if err := p.stop(t, 20*time.Second); err != nil {
			t.Errorf("%s exit: %v", p.name, err)
		}
	}
}

// With the broker unreachable the ingress answers 503 with Retry-After, never 202.
func TestIngress_BrokerUnreachableAnswers503(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		t.Fatal(err)
	}
	ing := start(t, "ingress", map[string]string{"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	for range 3 {
		resp, out := post(t, ing.addr, seed, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || out["error"] == nil {
			t.Fatalf("answer %d (Retry-After %q) %v, want 503 with Retry-After and an error", resp.StatusCode, resp.Header.Get("Retry-After"), out)
		}
	}
	if err := ing.stop(t, 20*time.Second); err != nil {
		t.Errorf("ingress exit: %v", err)
	}
}

// Someone deletes the exchange while the system runs: the ingress's channel
// fails, its session starts over and redeclares the topology, and
// registrations are accepted and delivered again.
func TestIngress_RecoversWhenTheExchangeIsDeleted(t *testing.T) {
	s := startStack(t, nil)
	postUntilAccepted(t, s.ingress.addr, registration("before"))

	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(s.topo.Exchange, false, false); err != nil {
		t.Fatal(err)
	}
	ch.Close()

	out := postUntilAccepted(t, s.ingress.addr, registration("after"))
	id, _ := out["id"].(string)
	brokertest.Eventually(t, 15*time.Second, "the registration after the deletion to arrive", func() bool {
		for _, item := range getReceived(t, s.stub.addr).Items {
			if item.IdempotencyKey == id {
				return true
			}
		}
		return false
	})
}

// registration is the seed's body with a passenger id of our choosing.
func registration(passengerID string) []byte {
	seed, err := os.ReadFile("testdata/seed.json")
	if err != nil {
		panic(err)
	}
	return bytes.Replace(seed, []byte(`"241241d"`), []byte(`"`+passengerID+`"`), 1)
}

// Someone removes the main queue's binding: the message is returned
// unroutable (503, not 202), the ingress starts over and redeclares the
// topology, and registrations are accepted again.
func TestIngress_RecoversWhenTheBindingIsRemoved(t *testing.T) {
	s := startStack(t, nil)
	postUntilAccepted(t, s.ingress.addr, registration("before"))

	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(s.topo.Queue, s.topo.Queue, s.topo.Exchange, nil); err != nil {
		t.Fatal(err)
	}
	ch.Close()

	resp, out := post(t, s.ingress.addr, registration("unbound"), nil)
	if resp.StatusCode != 503 {
		t.Errorf("POST with no binding: %d %v, want 503", resp.StatusCode, out)
	}
	postUntilAccepted(t, s.ingress.addr, registration("after"))
}
