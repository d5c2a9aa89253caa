package forwarder_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

// gatekeeper is a backend that refuses relay's credentials (401 or 403) to
// the requests refuse picks, and takes the others.
type gatekeeper struct {
	*httptest.Server
	refuse  func(key string, n int) int // 0 takes the request; n counts this key's requests from 1
	mu      sync.Mutex
	tries   map[string]int
	taken   map[string]string // X-Delivery-Attempt of the request taken, by key
	refused atomic.Int32
}

func newGatekeeper(t *testing.T, refuse func(key string, n int) int) *gatekeeper {
	g := &gatekeeper{refuse: refuse, tries: map[string]int{}, taken: map[string]string{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		key := r.Header.Get("Idempotency-Key")
		g.mu.Lock()
		g.tries[key]++
		status := g.refuse(key, g.tries[key])
		if status == 0 {
			g.taken[key] = r.Header.Get("X-Delivery-Attempt")
		}
		g.mu.Unlock()
		if status != 0 {
			g.refused.Add(1)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"error":"no valid webhook-signature"}`)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatekeeper) delivered() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]string, len(g.taken))
	for k, v := range g.taken {
		out[k] = v
	}
	return out
}

// A backend that refuses relay's credentials (a wrong signing secret, say)
// refuses every message: that is relay's configuration, not a poison
// message. Delivery pauses like an outage with a log line that says where to
// look, nothing is dead-lettered and no attempt is spent, however many probe
// rounds fail; once the configuration is right, everything arrives.
func TestForwarder_BackendRefusingCredentialsPausesDelivery(t *testing.T) {
	var fixed atomic.Bool
	be := newGatekeeper(t, func(string, int) int {
		if fixed.Load() {
			return 0
		}
		return http.StatusUnauthorized
	})
	h := start(t, brokertest.Config(t), be.URL)

	const n = 10
	for i := range n {
		h.publish(t, fmt.Sprint("refused-", i), seedBody)
	}
	brokertest.Eventually(t, 15*time.Second, "the breaker to open", func() bool { return h.brk.State() != breaker.Closed })
	brokertest.Eventually(t, 15*time.Second, "three failed probes", func() bool {
		return strings.Count(h.logs.String(), "probe failed; still paused") >= 3
	})
	logs := h.logs.String()
	if want := "catering backend unavailable: backend refused relay's credentials (401): check CATERING_SIGNING_SECRET / client certificate"; !strings.Contains(logs, want) {
		t.Errorf("the pause line does not say why; want %q in:\n%s", want, logs)
	}
	if !strings.Contains(logs, "no valid webhook-signature") {
		t.Errorf("the log does not show what the backend said:\n%s", logs)
	}
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Fatalf("%d dead letters while the backend refused relay's credentials, want 0", d)
	}
	fixed.Store(true)

	brokertest.Eventually(t, 20*time.Second, "every message delivered", func() bool { return len(be.delivered()) == n })
	for id, attempt := range be.delivered() {
		if attempt != "1" {
			t.Errorf("%s delivered as attempt %s, want 1: the refusals spent attempts", id, attempt)
		}
	}
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Errorf("%d dead letters, want 0", d)
	}
	if n := be.refused.Load(); n < 5 {
		t.Errorf("the backend refused %d requests; the test did not exercise the pause", n)
	}
}

// One message refused (403) while the others go through is not
// dead-lettered either: it is held and tried again, uncounted (if it is the
// last one left, its refusals open the breaker, and it is the probe), and
// arrives as attempt 1 when the backend lets it in.
func TestForwarder_OneMessageRefusedIsNeitherCountedNorDeadLettered(t *testing.T) {
	const refusals = 6 // more than MAX_DELIVERY_ATTEMPTS
	be := newGatekeeper(t, func(key string, n int) int {
		if key == "locked-out" && n <= refusals {
			return http.StatusForbidden
		}
		return 0
	})
	h := start(t, brokertest.Config(t), be.URL)

	h.publish(t, "locked-out", seedBody)
	for i := range 20 {
		h.publish(t, fmt.Sprint("welcome-", i), seedBody)
	}
	brokertest.Eventually(t, 30*time.Second, "every message delivered", func() bool { return len(be.delivered()) == 21 })
	if got := be.delivered()["locked-out"]; got != "1" {
		t.Errorf("the refused message arrived as attempt %q, want 1", got)
	}
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Errorf("%d dead letters, want 0", d)
	}
	if n := be.refused.Load(); n != refusals {
		t.Errorf("backend refused %d requests, want %d", n, refusals)
	}
	if !strings.Contains(h.logs.String(), "backend refused relay's credentials (403)") {
		t.Errorf("no log line says why the message is held:\n%s", h.logs.String())
	}
}

// A message whose attempts are never counted while the breaker stays closed
// (refused 401 while others go through) is still handed back to the queue
// after HoldMax, like one held by an open breaker, so the broker's
// consumer_timeout never fires; it is not dead-lettered, and arrives once it
// is let in.
func TestForwarder_UncountedAttemptsAreHeldAtMostHoldMax(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attachPublisher(t, conn)
	var letIn atomic.Bool
	var delivered atomic.Int32
	sender := senderFunc(func(_ context.Context, r delivery.Request) delivery.Result {
		if !letIn.Load() {
			return delivery.Result{Status: 401, Err: &delivery.StatusError{Code: 401}}
		}
		delivered.Add(1)
		return delivery.Result{Status: 200}
	})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	// A breaker that never opens: the refusals alone must not hold the message for ever.
	brk := breaker.New(breaker.Options{Threshold: 1 << 30, Window: 20, FailureRate: 0.8, MinMessages: 3, ProbeInterval: time.Second, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	fwd := forwarder.New(forwarder.Options{Concurrency: 1, Prefetch: 1, DeliveryTimeout: time.Second,
		PublishTimeout: 5 * time.Second, HoldMax: 300 * time.Millisecond}, topo, pub, sender, brk, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Consume(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	if err := pub.Publish(pctx, topo.Exchange, topo.Queue, envelope.New("stuck", []byte(seedBody), time.Now())); err != nil {
		t.Fatal(err)
	}

	brokertest.Eventually(t, 10*time.Second, "the message handed back twice", func() bool {
		return strings.Count(logs.String(), "why=\"attempts not counted for BREAKER_HOLD_MAX\"") >= 2
	})
	if s := brk.State(); s != breaker.Closed {
		t.Fatalf("breaker %v, want closed throughout", s)
	}
	letIn.Store(true)
	brokertest.Eventually(t, 10*time.Second, "the message delivered", func() bool { return delivered.Load() == 1 })
	if d := brokertest.Depth(t, conn, topo.DeadQueue); d != 0 {
		t.Errorf("%d dead letters, want 0", d)
	}
}
