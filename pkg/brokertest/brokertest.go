// Package brokertest connects tests to a real RabbitMQ and gives each test
// its own topology names, so tests run beside a developer's running stack.
//
// A test that needs the broker fails, loudly, when none answers: it never
// skips. scripts/broker.sh (run by make test) makes one available.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/topology"
)

// DefaultURL is the broker scripts/broker.sh provides.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns AMQP_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Dial connects to the test broker and closes the connection when t ends.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(URL())
	if err != nil {
		t.Fatalf("RabbitMQ is not reachable at %s (run scripts/broker.sh, or set AMQP_URL): %v", URL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

var unsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Prefix returns a topology prefix unique to this test run.
func Prefix(t testing.TB) string {
	t.Helper()
	name := strings.Trim(unsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "test." + name + "." + hex.EncodeToString(b)
}

// Config returns a topology configuration with a unique prefix and fast retries.
func Config(t testing.TB) topology.Config {
	return topology.Config{
		Prefix:          Prefix(t),
		MaxAttempts:     4,
		RetryInitial:    100 * time.Millisecond,
		RetryMultiplier: 2,
		RetryMax:        time.Second,
		DeliveryLimit:   100,
	}
}

// Declare declares cfg's topology and deletes it, messages and all, when t ends.
func Declare(t testing.TB, conn *amqp.Connection, cfg topology.Config) *topology.Topology {
	t.Helper()
	topo := topology.New(cfg)
	if err := topo.Declare(conn); err != nil {
		t.Fatalf("declare topology: %v", err)
	}
	t.Cleanup(func() { DeleteTopology(t, topo) })
	return topo
}

// DeleteTopology removes topo on a connection of its own (the test's may be
// closed by now), and its limit policy, which the services put.
func DeleteTopology(t testing.TB, topo *topology.Topology) {
	t.Helper()
	DeleteLimits(t, topo)
	conn, err := amqp.Dial(URL())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	if err := topo.Delete(conn); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// Depth returns the number of ready messages in queue.
func Depth(t testing.TB, conn *amqp.Connection, queue string) int {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages
}

// Get takes one message from queue (acknowledging it), waiting up to timeout.
func Get(t testing.TB, conn *amqp.Connection, queue string, timeout time.Duration) amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	deadline := time.Now().Add(timeout)
	for {
		d, ok, err := ch.Get(queue, true /* autoAck */)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %s within %s", queue, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a queue: there is no event to wait on
	}
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ManagementURL returns RABBITMQ_MANAGEMENT_URL: "" means the management API
// on the test broker's host, port 15672.
func ManagementURL() string { return os.Getenv("RABBITMQ_MANAGEMENT_URL") }

// Admin returns a client of the test broker's management API. It fails the
// test, loudly, when the API does not answer: scripts/broker.sh enables the
// management plugin on a local broker.
func Admin(t testing.TB) *brokeradmin.Client {
	t.Helper()
	c, err := brokeradmin.New(URL(), ManagementURL())
	if err != nil {
		t.Fatalf("management API: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.GetPolicy(ctx, "relay-probe-"+Prefix(t)); err != nil && !errors.Is(err, brokeradmin.ErrNotFound) {
		t.Fatalf("RabbitMQ's management API does not answer at %s (run scripts/broker.sh, which enables rabbitmq_management, or set RABBITMQ_MANAGEMENT_URL): %v", c, err)
	}
	return c
}

// ApplyLimits puts topo's limit policy on the broker and deletes it when t ends.
func ApplyLimits(t testing.TB, topo *topology.Topology) {
	t.Helper()
	admin := Admin(t)
	name, policy, ok := topo.LimitPolicy()
	if !ok {
		t.Fatal("ApplyLimits: the topology sets no limit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PutPolicy(ctx, name, policy); err != nil {
		t.Fatalf("put policy %s: %v", name, err)
	}
	t.Cleanup(func() { DeleteLimits(t, topo) })
}

// DeleteLimits removes topo's limit policy, if there is one.
func DeleteLimits(t testing.TB, topo *topology.Topology) {
	c, err := brokeradmin.New(URL(), ManagementURL())
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	name, _, _ := topo.LimitPolicy()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.DeletePolicy(ctx, name); err != nil {
		t.Logf("cleanup: delete policy %s: %v", name, err)
	}
}
