package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/logtest"
	"github.com/railco/relay/pkg/topology"
)

// deadline bounds every wait, so a broken shutdown fails instead of hanging.
const deadline = 15 * time.Second

// client makes each request on a fresh connection, so none is left idle.
var client = &http.Client{Timeout: deadline, Transport: &http.Transport{DisableKeepAlives: true}}

func seedBody(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syncBuffer collects log output while it is written.
type syncBuffer = logtest.Buffer

// ingress is one run() in the background.
type ingress struct {
	url      string // the public port
	addr     string
	adminURL string // the admin port
	cancel   context.CancelFunc
	done     chan error // receives run's result once
	logs     *syncBuffer
}

// baseEnv is the environment of a test ingress on a topology of the test's own.
func baseEnv(t *testing.T) (map[string]string, topology.Config) {
	t.Helper()
	tcfg := brokertest.WithEvents(brokertest.Config(t)) // the tests turn EVENTS on: the stream goes too
	t.Cleanup(func() { brokertest.DeleteTopology(t, topology.New(tcfg)) })
	return map[string]string{
		"INGRESS_INDEX_PATH":      filepath.Join(t.TempDir(), "index.db"),
		"INGRESS_ADDR":            "127.0.0.1:0",
		"INGRESS_ADDR_FILE":       filepath.Join(t.TempDir(), "addr"),
		"INGRESS_ADMIN_ADDR":      "127.0.0.1:0",
		"INGRESS_ADMIN_ADDR_FILE": filepath.Join(t.TempDir(), "admin-addr"),
		"AMQP_URL":                brokertest.URL(),
		"TOPOLOGY_PREFIX":         tcfg.Prefix,
		"MAX_DELIVERY_ATTEMPTS":   fmt.Sprint(tcfg.MaxAttempts),
		"RETRY_INITIAL_INTERVAL":  tcfg.RetryInitial.String(),
		"RETRY_MULTIPLIER":        fmt.Sprint(tcfg.RetryMultiplier),
		"RETRY_MAX_INTERVAL":      tcfg.RetryMax.String(),
		"QUEUE_DELIVERY_LIMIT":    fmt.Sprint(tcfg.DeliveryLimit),
		"LOG_LEVEL":               "debug",
		"EVENTS":                  "on",
	}, tcfg
}

// start runs the ingress with env and waits until it listens.
func start(t *testing.T, env map[string]string) *ingress {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &ingress{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	go func() { in.done <- run(ctx, func(k string) string { return env[k] }, in.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done: // the test did not collect it
		case <-time.After(deadline):
			t.Errorf("run did not return within %s of cancel", deadline)
		}
		if t.Failed() {
			t.Logf("ingress log:\n%s", in.logs)
		}
	})
	var exited error
	brokertest.Eventually(t, deadline, "the ingress to write INGRESS_ADDR_FILE", func() bool {
		select {
		case err := <-in.done:
			exited = fmt.Errorf("run returned %v before listening", err)
			in.done <- err
			return true
		default:
		}
		b, err := os.ReadFile(env["INGRESS_ADDR_FILE"])
		in.addr = string(b)
		admin, adminErr := os.ReadFile(env["INGRESS_ADMIN_ADDR_FILE"])
		in.adminURL = "http://" + string(admin)
		return err == nil && adminErr == nil
	})
	if exited != nil {
		t.Fatal(exited)
	}
	in.url = "http://" + in.addr
	return in
}

// stop cancels run and returns its result.
func (in *ingress) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(deadline):
		t.Fatalf("run did not return within %s of cancel", deadline)
		return nil
	}
}

// waitReady polls /readyz until the broker session is up.
func (in *ingress) waitReady(t *testing.T) {
	t.Helper()
	brokertest.Eventually(t, deadline, "/readyz to answer 200", func() bool {
		res, err := client.Get(in.url + "/readyz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t *testing.T, method, url, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	if err := json.NewDecoder(res.Body).Decode(&a.body); err != nil {
		t.Fatalf("%s %s: status %d, body is not JSON: %v", method, url, res.StatusCode, err)
	}
	return a
}

func TestRun_AcceptsTheSeedAndShutsDownGracefully(t *testing.T) {
	env, tcfg := baseEnv(t)
	in := start(t, env)
	in.waitReady(t)

	seed := seedBody(t)
	res := do(t, http.MethodPost, in.url+"/catering/register", "application/json", seed)
	if res.status != http.StatusAccepted || res.body["status"] != "accepted" {
		t.Fatalf("POST seed: %d %v, want 202 accepted", res.status, res.body)
	}
	conn := brokertest.Dial(t)
	queue := topology.New(tcfg).Queue
	if n := brokertest.Depth(t, conn, queue); n != 1 {
		t.Fatalf("queue %s depth %d after 202, want 1", queue, n)
	}
	d := brokertest.Get(t, conn, queue, deadline)
	if !bytes.Equal(d.Body, seed) || d.MessageId != res.body["id"] || d.DeliveryMode != amqp.Persistent {
		t.Errorf("stored message id %q mode %d body %q; want id %v, persistent, the seed", d.MessageId, d.DeliveryMode, d.Body, res.body["id"])
	}

	if health := do(t, http.MethodGet, in.url+"/healthz", "", nil); health.status != http.StatusOK || health.body["status"] != "ok" {
		t.Errorf("healthz %d %v", health.status, health.body)
	}
	uris, err := broker.ParseURLs(env["AMQP_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if ready := do(t, http.MethodGet, in.url+"/readyz", "", nil); ready.body["node"] != broker.Node(uris[0]) {
		t.Errorf("readyz %v, want the node it is connected to, %s", ready.body, broker.Node(uris[0]))
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
	for _, want := range []string{`"msg":"ready to accept registrations"`, `"outcome":"accepted"`, `"msg":"ingress stopped"`} {
		if !strings.Contains(in.logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

func TestRun_BrokerUnreachableAnswers503(t *testing.T) {
	env, _ := baseEnv(t)
	env["AMQP_URL"] = "amqp://guest:guest@127.0.0.1:1/" // nothing listens on port 1
	env["RETRY_AFTER"] = "9s"
	in := start(t, env)

	for range 3 { // the loop keeps reconnecting; every request in the meantime gets 503
		res := do(t, http.MethodPost, in.url+"/catering/register", "application/json", seedBody(t))
		if res.status != http.StatusServiceUnavailable {
			t.Fatalf("POST: %d %v, want 503", res.status, res.body)
		}
		if got := res.header.Get("Retry-After"); got != "9" {
			t.Errorf("Retry-After %q, want 9", got)
		}
	}
	ready := do(t, http.MethodGet, in.url+"/readyz", "", nil)
	if ready.status != http.StatusServiceUnavailable || ready.body["status"] != "not ready" || ready.body["broker"] != "disconnected" || ready.body["node"] != nil {
		t.Errorf("readyz %d %v, want 503 not ready / disconnected", ready.status, ready.body)
	}
	if health := do(t, http.MethodGet, in.url+"/healthz", "", nil); health.status != http.StatusOK {
		t.Errorf("healthz %d, want 200 (the process is alive)", health.status)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
	if strings.Contains(in.logs.String(), "guest:guest") {
		t.Error("the log contains the AMQP password")
	}
}

func TestRun_TopologyMismatchFailsStartup(t *testing.T) {
	env, tcfg := baseEnv(t)
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	topo := topology.New(tcfg)
	queue := topo.Queue
	// A classic queue that matches relay's in the arguments RabbitMQ compares
	// before x-queue-type (x-dead-letter-exchange, x-overflow), so that the
	// type is what it reports. (A classic queue refuses x-dead-letter-strategy
	// and x-delivery-limit, which it would compare first.)
	args := amqp.Table{
		amqp.QueueTypeArg:        amqp.QueueTypeClassic,
		"x-dead-letter-exchange": topo.DeadExchange,
		amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
	}
	if _, err := ch.QueueDeclare(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, args); err != nil {
		t.Fatalf("pre-declare %s: %v", queue, err)
	}
	_ = ch.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, logs) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("run returned nil, want the topology conflict")
		}
		var mismatch *topology.MismatchError
		if !errors.As(err, &mismatch) {
			t.Errorf("error %v is not a *topology.MismatchError", err)
		}
		t.Logf("run: %v", err)
		for _, want := range []string{queue, "x-queue-type"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	case <-time.After(deadline):
		t.Fatalf("run still running %s after start, want it to fail on the conflicting queue; log:\n%s", deadline, logs)
	}
}

func TestRun_InvalidConfigurationFailsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad duration", map[string]string{"PUBLISH_TIMEOUT": "soon"}, "PUBLISH_TIMEOUT"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"bad topology", map[string]string{"MAX_DELIVERY_ATTEMPTS": "0"}, "MAX_DELIVERY_ATTEMPTS"},
		{"write timeout within read + publish", map[string]string{"INGRESS_WRITE_TIMEOUT": "12s"}, "INGRESS_WRITE_TIMEOUT"},
		{"negative connection limit", map[string]string{"INGRESS_MAX_CONNECTIONS": "-1"}, "INGRESS_MAX_CONNECTIONS"},
		{"unbindable address", map[string]string{"INGRESS_ADDR": "256.0.0.1:0"}, "listen"},
		{"unwritable address file", map[string]string{"INGRESS_ADDR": "127.0.0.1:0", "INGRESS_ADDR_FILE": "/nonexistent/dir/addr"}, "INGRESS_ADDR_FILE"},
		{"unbindable admin address", map[string]string{"INGRESS_ADDR": "127.0.0.1:0", "INGRESS_ADMIN_ADDR": "256.0.0.1:0"}, "INGRESS_ADMIN_ADDR"},
		{"unwritable admin address file", map[string]string{"INGRESS_ADDR": "127.0.0.1:0", "INGRESS_ADMIN_ADDR": "127.0.0.1:0", "INGRESS_ADMIN_ADDR_FILE": "/nonexistent/dir/addr"}, "INGRESS_ADMIN_ADDR_FILE"},
		{"admin token twice", map[string]string{"INGRESS_ADMIN_TOKEN": "a", "INGRESS_ADMIN_TOKEN_FILE": "/run/t"}, "INGRESS_ADMIN_TOKEN_FILE"},
		{"unreadable admin token file", map[string]string{"INGRESS_ADMIN_TOKEN_FILE": "/nonexistent/token"}, "INGRESS_ADMIN_TOKEN_FILE"},
		{"negative rate limit", map[string]string{"INGRESS_RATE_LIMIT": "-5"}, "INGRESS_RATE_LIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestRun_ShutdownWaitsForInFlightConfirm cancels run while a request is in
// the handler and checks that the request still gets its confirm and 202: the
// broker connection must outlive the HTTP server's drain.
func TestRun_ShutdownWaitsForInFlightConfirm(t *testing.T) {
	env, tcfg := baseEnv(t)
	in := start(t, env)
	in.waitReady(t)
	seed := seedBody(t)

	// Send the headers and half the body; "100 Continue" proves the handler
	// is running (it is reading the body).
	conn, err := net.DialTimeout("tcp", in.addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	half := len(seed) / 2
	fmt.Fprintf(conn, "POST /catering/register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", in.addr, len(seed))
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil || res.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v, %v", res, err)
	}
	if _, err := conn.Write(seed[:half]); err != nil {
		t.Fatal(err)
	}

	in.cancel()
	// The listener closes when shutdown begins; the request is still in flight.
	brokertest.Eventually(t, deadline, "the listener to close", func() bool {
		c, err := net.Dial("tcp", in.addr)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	select {
	case err := <-in.done:
		t.Fatalf("run returned %v while a request was in flight", err)
	default:
	}

	if _, err := conn.Write(seed[half:]); err != nil {
		t.Fatal(err)
	}
	res, err = http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight request: %d %v, want 202", res.StatusCode, body)
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	amqpConn := brokertest.Dial(t)
	if n := brokertest.Depth(t, amqpConn, topology.New(tcfg).Queue); n != 1 {
		t.Errorf("queue depth %d, want 1", n)
	}
}

// The accepted events publish on a channel of their own. When it breaks (here
// the stream is deleted, so an event message comes back unroutable), the
// session ends, as it does when a registrations' channel breaks, and the next
// one declares the stream again: a later registration's accepted event is
// stored.
func TestRun_AnEventStreamDeletedUnderItIsDeclaredAgain(t *testing.T) {
	env, tcfg := baseEnv(t)
	// The index's consumer loses the stream too, and its next session
	// declares it again, 125 ms after the loss at the soonest (the
	// dialer's backoff): the accepted event must reach the broker before
	// that to come back unroutable, so it does not linger.
	env["INGRESS_EVENTS_LINGER"] = "1ms"
	in := start(t, env)
	in.waitReady(t)
	topo := topology.New(tcfg)
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(topo.Events, false /* ifUnused */, false /* ifEmpty */, false /* noWait */); err != nil {
		t.Fatalf("delete %s: %v", topo.Events, err)
	}

	post := func() string {
		t.Helper()
		res := do(t, http.MethodPost, in.url+"/catering/register", "application/json", seedBody(t))
		if res.status != http.StatusAccepted {
			t.Fatalf("POST: %d %v, want 202", res.status, res.body)
		}
		return res.body["id"].(string)
	}
	post() // its accepted event has no stream to go to
	sessions := func() int { return strings.Count(in.logs.String(), `"msg":"ready to accept registrations"`) }
	brokertest.Eventually(t, deadline, "a new broker session after the event channel broke", func() bool { return sessions() >= 2 })
	in.waitReady(t)

	id := post()
	r := brokertest.WaitEvents(t, conn, topo.Events, id, deadline, func(r events.Registration) bool { return r.Status != "" })
	if r.Status != events.StatusAccepted {
		t.Errorf("registration %s in the stream declared again: status %q, want %q", id, r.Status, events.StatusAccepted)
	}
}
