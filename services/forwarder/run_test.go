package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// logBuffer collects a run's log lines and lets a test wait for one.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) waitFor(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(b.String(), substr) {
		select {
		case <-b.changed:
		case <-deadline:
			t.Fatalf("log never showed %q within %s; log:\n%s", substr, timeout, b.String())
		}
	}
}

// startRun runs the forwarder like main does and returns a stop function
// that cancels it and returns run's error.
func startRun(t *testing.T, env map[string]string, out io.Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, out) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func baseEnv(prefix string) map[string]string {
	return map[string]string{
		"AMQP_URL":               brokertest.URL(),
		"TOPOLOGY_PREFIX":        prefix,
		"FORWARDER_ADMIN_ADDR":   "127.0.0.1:0",
		"RETRY_INITIAL_INTERVAL": "500ms",
		"RETRY_MULTIPLIER":       "2",
		"LOG_LEVEL":              "debug",
		"EVENTS":                 "on",
	}
}

func topoOf(t *testing.T, env map[string]string) *topology.Topology {
	cfg := topology.Config{Prefix: env["TOPOLOGY_PREFIX"], MaxAttempts: 4, RetryInitial: 500 * time.Millisecond,
		RetryMultiplier: 2, RetryMax: 10 * time.Minute, DeliveryLimit: 100, Events: true} // the tests turn EVENTS on: the stream goes too
	topo := topology.New(cfg)
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	return topo
}

func publish(t *testing.T, conn *amqp.Connection, topo *topology.Topology, id, body string) {
	t.Helper()
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, topo.Exchange, topo.Queue, envelope.New(id, []byte(body), time.Now())); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// waitConsuming waits until the forwarder consumes the main queue, which it
// does only after declaring the whole topology.
func waitConsuming(t *testing.T, conn *amqp.Connection, topo *topology.Topology) {
	t.Helper()
	brokertest.Eventually(t, 10*time.Second, "forwarder consuming "+topo.Queue, func() bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(topo.Queue, true, false, false, false, nil)
		return err == nil && q.Consumers > 0
	})
}

// The seed's two steps: the endpoint does not exist, so the message is
// stored, not lost; the forwarder restarts with a working endpoint within the
// retry window, and the message arrives.
func TestRun_SeedUnresolvableEndpointThenRestartDelivers(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)

	env["CATERING_SERVICE_EP"] = "http://www.urldoesnotexist.com"
	logs := newLogBuffer()
	stop := startRun(t, env, logs)
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "seed-1", `{"passengerId":"241241d"}`)
	// Unresolvable is an outage, not a verdict on the message: delivery
	// pauses, and the attempt does not count.
	logs.waitFor(t, "catering backend unavailable", 10*time.Second)
	logs.waitFor(t, `"outcome":"not-counted"`, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("first forwarder: %v", err)
	}
	stored := 0
	for _, q := range topo.QueueNames() {
		if q != topo.DeadQueue {
			stored += brokertest.Depth(t, conn, q)
		}
	}
	if stored != 1 {
		t.Fatalf("after the failed attempt %d messages are stored in the main queue and retry tiers, want 1", stored)
	}
	if !strings.Contains(logs.String(), `"outcome":"returned-to-queue"`) {
		t.Errorf("the held message was not handed back on shutdown; log:\n%s", logs.String())
	}

	var mu sync.Mutex
	var got []string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key")+" attempt "+r.Header.Get("X-Delivery-Attempt")+" "+string(body))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer be.Close()
	env["CATERING_SERVICE_EP"] = be.URL + "/catering"
	stop = startRun(t, env, io.Discard)
	brokertest.Eventually(t, 15*time.Second, "delivery to the working endpoint", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	if err := stop(); err != nil {
		t.Fatalf("second forwarder: %v", err)
	}
	// Attempt 1: the tries against the unresolvable endpoint were not counted.
	if want := `seed-1 attempt 1 {"passengerId":"241241d"}`; len(got) != 1 || got[0] != want {
		t.Errorf("backend got %q, want exactly [%q]", got, want)
	}
	for _, q := range topo.QueueNames() {
		if n := brokertest.Depth(t, conn, q); n != 0 {
			t.Errorf("queue %s holds %d messages after delivery, want 0", q, n)
		}
	}
}

func TestRun_TopologyMismatchFailsWithClearMessage(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	env["CATERING_SERVICE_EP"] = "http://127.0.0.1:1/catering"
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	// The queues exist already, declared with another delivery limit.
	other := topology.Config{Prefix: topo.Exchange, MaxAttempts: 4, RetryInitial: 500 * time.Millisecond,
		RetryMultiplier: 2, RetryMax: 10 * time.Minute, DeliveryLimit: 7}
	if err := topology.New(other).Declare(conn); err != nil {
		t.Fatal(err)
	}

	err := run(context.Background(), func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("run started despite a conflicting queue")
	}
	for _, want := range []string{topo.Queue, "x-delivery-limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestRun_ShutdownFinishesInFlightDelivery(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)

	arrived := make(chan struct{})
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer be.Close()
	env["CATERING_SERVICE_EP"] = be.URL
	stop := startRun(t, env, io.Discard)
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "inflight-1", `{}`)
	<-arrived

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("run returned (%v) while a delivery was in flight", err)
	case <-time.After(200 * time.Millisecond): // still waiting for the delivery, as it should
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, q := range topo.QueueNames() {
		if n := brokertest.Depth(t, conn, q); n != 0 {
			t.Errorf("queue %s holds %d messages after a delivered in-flight message, want 0", q, n)
		}
	}
}

// The forwarder bounds the main queue with a policy, which a restart with
// other limits changes in place: no redeclaration, no PRECONDITION_FAILED.
func TestRun_AppliesTheQueueLimitPolicy(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	env["CATERING_SERVICE_EP"] = "http://127.0.0.1:1/catering"
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	admin := brokertest.Admin(t)
	name, _, _ := topo.LimitPolicy()
	policy := func() map[string]any {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := admin.GetPolicy(ctx, name)
		if err != nil {
			t.Fatalf("policy %s: %v", name, err)
		}
		return p.Definition
	}

	for _, limit := range []string{"7", "9"} {
		env["QUEUE_MAX_LENGTH"], env["QUEUE_MAX_BYTES"] = limit, "0"
		logs := newLogBuffer()
		stop := startRun(t, env, logs)
		logs.waitFor(t, "main queue bounded", 10*time.Second)
		waitConsuming(t, conn, topo)
		def := policy()
		if fmt.Sprint(def["max-length"]) != limit || def["overflow"] != "reject-publish" || def["max-length-bytes"] != nil {
			t.Errorf("QUEUE_MAX_LENGTH=%s: policy %v", limit, def)
		}
		if err := stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}

// Without the management API the forwarder still delivers, and says loudly
// that the queue is unbounded.
func TestRun_NoManagementAPIStillDelivers(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Idempotency-Key")
	}))
	t.Cleanup(backend.Close)
	env["CATERING_SERVICE_EP"] = backend.URL
	env["RABBITMQ_MANAGEMENT_URL"] = "http://127.0.0.1:1"
	logs := newLogBuffer()
	startRun(t, env, logs)
	logs.waitFor(t, "main queue NOT bounded", 15*time.Second)
	waitConsuming(t, conn, topo)
	publish(t, conn, topo, "unbounded", "{}")
	select {
	case id := <-got:
		if id != "unbounded" {
			t.Errorf("delivered %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered")
	}
}
