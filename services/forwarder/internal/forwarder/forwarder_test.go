package forwarder_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle keep-alive connections' goroutines until the transport is closed.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// seedBody is the registration from the tutorial, with its whitespace.
const seedBody = `{
 "passengerId": "241241d",
 "class": "first",
 "train": "RLC-5051",
 "departure": {
   "time": "2021-07-16 11:45",
   "station": "King Cross"
 },
 "arrival": {
   "time": "2021-07-16 16:40",
   "station": "Edinburgh"
 },
 "duration": "4h 55m",
 "food": [
   {
     "serving": "lunch",
     "type": "Asian",
     "comments": [
       "Not too spicy"
     ]
   },
   {
     "serving": "snacks",
     "type": "Normal",
     "comments": []
   }
 ]
}`

// request is what the fake backend saw.
type request struct {
	at      time.Time
	body    string
	key     string
	attempt string
	ctype   string
}

// backend is a Catering endpoint whose answers the test scripts.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	answer   func(n int) (status int, header http.Header) // n counts from 1
	arrived  chan struct{}
}

func newBackend(t *testing.T, answer func(n int) (int, http.Header)) *backend {
	b := &backend{answer: answer, arrived: make(chan struct{}, 1000)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.requests = append(b.requests, request{time.Now(), string(body), r.Header.Get("Idempotency-Key"), r.Header.Get("X-Delivery-Attempt"), r.Header.Get("Content-Type")})
		n := len(b.requests)
		b.mu.Unlock()
		status, header := b.answer(n)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"status":"`+strconv.Itoa(status)+`"}`)
		b.arrived <- struct{}{}
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) seen() []request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]request(nil), b.requests...)
}

// waitRequests waits until n requests arrived.
func (b *backend) waitRequests(t *testing.T, n int, timeout time.Duration) []request {
	t.Helper()
	deadline := time.After(timeout)
	for len(b.seen()) < n {
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("backend saw %d requests, want %d within %s", len(b.seen()), n, timeout)
		}
	}
	return b.seen()
}

type harness struct {
	topo *topology.Topology
	conn *amqp.Connection
	pub  *broker.Publisher
	brk  *breaker.Breaker
	logs *syncBuffer
	obs  *recorder
}

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// start declares a fresh topology, runs a forwarder against endpoint, and
// stops it gracefully when the test ends.
func start(t *testing.T, cfg topology.Config, endpoint string) *harness {
	t.Helper()
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, cfg)
	pub := attachPublisher(t, conn)

	client := delivery.NewClient(endpoint, 4)
	t.Cleanup(client.Close)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, Window: 20, FailureRate: 0.8, MinMessages: 3, ProbeInterval: 200 * time.Millisecond, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	obs := &recorder{}
	fwd := forwarder.New(forwarder.Options{
		Concurrency: 4, Prefetch: 4, DeliveryTimeout: 2 * time.Second, PublishTimeout: 5 * time.Second,
		NonRetryable: map[int]bool{422: true}, HoldMax: time.Minute, Observer: obs,
	}, topo, pub, client, brk, log)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Consume(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	return &harness{topo: topo, conn: conn, pub: pub, brk: brk, logs: logs, obs: obs}
}

// attachPublisher attaches a one-channel publisher to conn for the test.
func attachPublisher(t *testing.T, conn *amqp.Connection) *broker.Publisher {
	t.Helper()
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Detach)
	return pub
}

func (h *harness) publish(t *testing.T, id, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.pub.Publish(ctx, h.topo.Exchange, h.topo.Queue, envelope.New(id, []byte(body), time.Now())); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func always(status int) func(int) (int, http.Header) {
	return func(int) (int, http.Header) { return status, nil }
}

func TestForwarder_DeliversExactBytesWithIdempotencyKey(t *testing.T) {
	be := newBackend(t, always(200))
	h := start(t, brokertest.Config(t), be.URL)

	h.publish(t, "reg-1", seedBody)

	got := be.waitRequests(t, 1, 10*time.Second)[0]
	if got.body != seedBody {
		t.Errorf("backend got body %q, want the published bytes %q", got.body, seedBody)
	}
	if got.key != "reg-1" || got.attempt != "1" || got.ctype != "application/json" {
		t.Errorf("headers: Idempotency-Key %q, X-Delivery-Attempt %q, Content-Type %q; want reg-1, 1, application/json", got.key, got.attempt, got.ctype)
	}
	brokertest.Eventually(t, 5*time.Second, "main queue to drain", func() bool {
		return brokertest.Depth(t, h.conn, h.topo.Queue) == 0
	})
	if n := brokertest.Depth(t, h.conn, h.topo.DeadQueue); n != 0 {
		t.Errorf("dead-letter queue holds %d messages, want 0", n)
	}
}

func TestForwarder_RetriesThroughTiersUntilDelivered(t *testing.T) {
	be := newBackend(t, func(n int) (int, http.Header) {
		if n < 3 {
			return 500, nil
		}
		return 200, nil
	})
	cfg := brokertest.Config(t)
	cfg.RetryInitial, cfg.RetryMultiplier = 400*time.Millisecond, 2 // tiers of 400ms and 800ms
	h := start(t, cfg, be.URL)

	h.publish(t, "reg-transient", seedBody)

	reqs := be.waitRequests(t, 3, 15*time.Second)
	for i, r := range reqs {
		if r.attempt != strconv.Itoa(i+1) || r.key != "reg-transient" || r.body != seedBody {
			t.Errorf("request %d: attempt %q key %q (body equal: %v)", i+1, r.attempt, r.key, r.body == seedBody)
		}
	}
	// The wait between attempts is the tier's TTL: never shorter, and not much
	// longer (the broker expires a quorum queue's head on a timer).
	const slack = 1500 * time.Millisecond
	for i, want := range []time.Duration{400 * time.Millisecond, 800 * time.Millisecond} {
		gap := reqs[i+1].at.Sub(reqs[i].at)
		t.Logf("attempt %d came %s after attempt %d (tier %s)", i+2, gap.Round(time.Millisecond), i+1, want)
		if gap < want || gap > want+slack {
			t.Errorf("gap before attempt %d = %s, want %s (+%s at most)", i+2, gap, want, slack)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "main queue to drain", func() bool {
		return brokertest.Depth(t, h.conn, h.topo.Queue) == 0
	})
	if n := len(be.seen()); n != 3 {
		t.Errorf("backend saw %d requests, want exactly 3", n)
	}
	if n := brokertest.Depth(t, h.conn, h.topo.DeadQueue); n != 0 {
		t.Errorf("dead-letter queue holds %d, want 0", n)
	}
}

func TestForwarder_DeadLettersAfterMaxAttempts(t *testing.T) {
	be := newBackend(t, func(int) (int, http.Header) { return 500, nil })
	h := start(t, brokertest.Config(t), be.URL)

	h.publish(t, "reg-poison", seedBody)

	dead := brokertest.Get(t, h.conn, h.topo.DeadQueue, 20*time.Second)
	if n := len(be.seen()); n != h.topo.MaxAttempts {
		t.Errorf("backend saw %d attempts, want MAX_DELIVERY_ATTEMPTS = %d", n, h.topo.MaxAttempts)
	}
	meta := envelope.Read(dead)
	if meta.Reason != envelope.ReasonMaxAttempts || meta.Attempts != 4 || meta.LastStatus != 500 {
		t.Errorf("dead letter: reason %q attempts %d last status %d; want max-attempts, 4, 500", meta.Reason, meta.Attempts, meta.LastStatus)
	}
	if !strings.Contains(meta.LastError, "500") {
		t.Errorf("last error %q does not mention the 500", meta.LastError)
	}
	if meta.FirstAttemptAt.IsZero() || meta.LastAttemptAt.Before(meta.FirstAttemptAt) || meta.DeadAt.IsZero() {
		t.Errorf("attempt times: first %v last %v dead %v", meta.FirstAttemptAt, meta.LastAttemptAt, meta.DeadAt)
	}
	if dead.MessageId != "reg-poison" || dead.Headers[envelope.HeaderMessageID] != "reg-poison" {
		t.Errorf("dead letter id %q / header %v, want reg-poison", dead.MessageId, dead.Headers[envelope.HeaderMessageID])
	}
	if string(dead.Body) != seedBody || dead.DeliveryMode != amqp.Persistent {
		t.Errorf("dead letter body changed or not persistent (mode %d)", dead.DeliveryMode)
	}
	for _, q := range h.topo.QueueNames() {
		if n := brokertest.Depth(t, h.conn, q); n != 0 {
			t.Errorf("queue %s still holds %d messages", q, n)
		}
	}
}

func TestForwarder_DeadLettersNonRetryableAfterOneAttempt(t *testing.T) {
	be := newBackend(t, always(422))
	h := start(t, brokertest.Config(t), be.URL)

	h.publish(t, "reg-invalid", seedBody)

	dead := brokertest.Get(t, h.conn, h.topo.DeadQueue, 10*time.Second)
	if n := len(be.seen()); n != 1 {
		t.Errorf("backend saw %d attempts, want exactly 1", n)
	}
	meta := envelope.Read(dead)
	if meta.Reason != envelope.ReasonNonRetryable || meta.Attempts != 1 || meta.LastStatus != 422 {
		t.Errorf("dead letter: reason %q attempts %d status %d; want non-retryable, 1, 422", meta.Reason, meta.Attempts, meta.LastStatus)
	}
}

func TestForwarder_RetryAfterPicksALongerTier(t *testing.T) {
	be := newBackend(t, func(n int) (int, http.Header) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"1"}}
		}
		return 200, nil
	})
	cfg := brokertest.Config(t) // tiers 100ms, 200ms, 400ms
	cfg.RetryMax = 2 * time.Second
	cfg.MaxAttempts = 6 // tiers 100ms, 200ms, 400ms, 800ms, 1.6s
	h := start(t, cfg, be.URL)

	h.publish(t, "reg-429", seedBody)

	reqs := be.waitRequests(t, 2, 10*time.Second)
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("retried after %s, want at least the backend's Retry-After of 1s", gap)
	}
}

// An outage of the backend pauses delivery: nothing is dead-lettered, no
// attempt is spent on it, and everything arrives once it is back.
func TestForwarder_OutagePausesWithoutSpendingAttempts(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	attempts := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // no answer at all, as from a dead host
			return
		}
		mu.Lock()
		attempts[r.Header.Get("Idempotency-Key")] = append(attempts[r.Header.Get("Idempotency-Key")], r.Header.Get("X-Delivery-Attempt"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h := start(t, brokertest.Config(t), srv.URL)

	const n = 10
	for i := range n {
		h.publish(t, fmt.Sprint("outage-", i), seedBody)
	}
	brokertest.Eventually(t, 10*time.Second, "the breaker to open", func() bool { return h.brk.State() == breaker.Open })
	// Several probe rounds fail while it stays down (probes every 200ms..1s).
	brokertest.Eventually(t, 10*time.Second, "two failed probes", func() bool {
		return strings.Count(h.logs.String(), "probe failed; still paused") >= 2
	})
	down.Store(false)

	brokertest.Eventually(t, 15*time.Second, "all messages delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == n
	})
	mu.Lock()
	for id, seen := range attempts {
		if seen[0] != "1" {
			t.Errorf("%s first arrived as attempt %s, want 1: the outage spent attempts", id, seen[0])
		}
	}
	mu.Unlock()
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Errorf("%d dead letters after an outage, want 0", d)
	}
	logs := h.logs.String()
	if strings.Count(logs, "pausing delivery") != 1 || strings.Count(logs, "backend available again; resuming") != 1 {
		t.Errorf("want one pause and one resume in the log:\n%s", logs)
	}
}

// A poison message fails while the backend takes the others: it alone is
// dead-lettered, after exactly MAX_DELIVERY_ATTEMPTS, and delivery never pauses.
func TestForwarder_PoisonAmongHealthyMessagesDoesNotOpenBreaker(t *testing.T) {
	var mu sync.Mutex
	poison := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == "poison" {
			mu.Lock()
			poison++
			mu.Unlock()
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	h := start(t, brokertest.Config(t), srv.URL)

	h.publish(t, "poison", seedBody)
	for i := range 30 {
		h.publish(t, fmt.Sprint("good-", i), seedBody)
	}
	dead := brokertest.Get(t, h.conn, h.topo.DeadQueue, 20*time.Second)
	if dead.MessageId != "poison" {
		t.Errorf("dead letter %q, want poison", dead.MessageId)
	}
	mu.Lock()
	defer mu.Unlock()
	if poison != h.topo.MaxAttempts {
		t.Errorf("poison tried %d times, want exactly %d", poison, h.topo.MaxAttempts)
	}
	if strings.Contains(h.logs.String(), "pausing delivery") {
		t.Errorf("the breaker opened for one poison message:\n%s", h.logs.String())
	}
}
