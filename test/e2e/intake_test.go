package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/topology"
)

// A full main queue is back-pressure, not loss: the ingress answers 503 with
// Retry-After and says the queue is full; what it accepted stays stored and
// arrives once the backend is back; what it refused was never stored; intake
// resumes by itself once the forwarder catches up.
func TestIntake_FullQueueAnswers503AndLosesNothing(t *testing.T) {
	const limit = 20
	prefix := brokertest.Prefix(t)
	// Events on, as the services have them by default: the stream goes too.
	topo := topology.New(brokertest.WithEvents(topology.Config{Prefix: prefix, MaxAttempts: 4, RetryInitial: time.Second, RetryMultiplier: 5,
		RetryMax: 10 * time.Minute, DeliveryLimit: 100}))
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	admin := brokertest.Admin(t)

	stub := start(t, "catering-stub", map[string]string{"STUB_DOWN": "true"}, "STUB_ADDR", "STUB_ADDR_FILE")
	env := map[string]string{
		"AMQP_URL": brokertest.URL(), "TOPOLOGY_PREFIX": prefix, "QUEUE_MAX_LENGTH": fmt.Sprint(limit),
		// One message held by the paused forwarder at most, so that the
		// queue's ready messages are nearly all that was accepted.
		"FORWARDER_CONCURRENCY": "1", "FORWARDER_PREFETCH": "1",
		"BREAKER_PROBE_INTERVAL": "200ms", "BREAKER_PROBE_MAX_INTERVAL": "500ms",
		"CATERING_SERVICE_EP": "http://" + stub.addr + "/catering",
	}
	fwd := start(t, "forwarder", env, "FORWARDER_ADMIN_ADDR", "FORWARDER_ADMIN_ADDR_FILE")
	ing := start(t, "ingress", env, "INGRESS_ADDR", "INGRESS_ADDR_FILE")
	name, _, _ := topo.LimitPolicy()
	brokertest.Eventually(t, 15*time.Second, "the forwarder to apply "+name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := admin.GetPolicy(ctx, name)
		return err == nil
	})
	postUntilAccepted(t, ing.addr, registration("warm-up")) // the ingress is connected

	var accepted, refused []string
	for i := range 3 * limit {
		key := fmt.Sprint("intake-", i)
		resp, out := post(t, ing.addr, registration(key), map[string]string{"Idempotency-Key": key})
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted = append(accepted, key)
		case http.StatusServiceUnavailable:
			msg, _ := out["error"].(string)
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(msg, "queue is full") {
				t.Errorf("503 for %s: Retry-After %q, error %q; want both, saying the queue is full", key, resp.Header.Get("Retry-After"), msg)
			}
			refused = append(refused, key)
		default:
			t.Fatalf("POST %s: %d %v", key, resp.StatusCode, out)
		}
	}
	fmt.Printf("intake: max length %d: accepted %d (+1 warm-up), refused %d with 503\n", limit, len(accepted), len(refused))
	if len(refused) == 0 || len(accepted)+1 > limit+3 {
		t.Fatalf("accepted %d (+1), refused %d; want about %d accepted and the rest refused", len(accepted), len(refused), limit)
	}

	// The backend comes back: everything accepted arrives, nothing refused does.
	setStubMode(t, stub.addr, `{"down": false}`)
	want := append([]string{"warm-up"}, accepted...)
	var got received
	brokertest.Eventually(t, 30*time.Second, "every accepted registration delivered", func() bool {
		got = getReceived(t, stub.addr)
		return got.Count >= len(want)
	})
	delivered := map[string]bool{}
	for _, it := range got.Items {
		delivered[it.IdempotencyKey] = true
	}
	lost := 0
	for _, k := range accepted {
		if !delivered[k] {
			lost++
		}
	}
	for _, k := range refused {
		if delivered[k] {
			t.Errorf("%s was answered 503 yet delivered: the answer was false", k)
		}
	}
	fmt.Printf("intake: lost %d of %d accepted\n", lost, len(accepted))
	if lost != 0 {
		t.Errorf("lost %d accepted registrations", lost)
	}

	// Intake resumed by itself.
	if resp, out := post(t, ing.addr, registration("after"), map[string]string{"Idempotency-Key": "after"}); resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST after the backlog drained: %d %v, want 202", resp.StatusCode, out)
	}
	for _, p := range []*process{ing, fwd, stub} {
		if err := p.stop(t, 20*time.Second); err != nil {
			t.Errorf("%s exit: %v", p.name, err)
		}
	}
}

func setStubMode(t *testing.T, addr, mode string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/admin/mode", bytes.NewBufferString(mode))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT /admin/mode: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /admin/mode: %d", resp.StatusCode)
	}
}
