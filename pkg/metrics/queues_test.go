package metrics_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/pkg/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runQueues registers q in a registry of its own and runs it until the test ends.
func runQueues(t *testing.T, q *metrics.Queues) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(q)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return reg
}

func publish(t *testing.T, conn *amqp.Connection, queue string, n int) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false /* noWait */); err != nil {
		t.Fatal(err)
	}
	for range n {
		c, err := ch.PublishWithDeferredConfirm("", queue, false /* mandatory */, false /* immediate */, amqp.Publishing{Body: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("publish to %s not confirmed: %v", queue, err)
		}
	}
}

// value gathers reg and returns the named gauge for queue.
func value(t *testing.T, reg prometheus.Gatherer, name, queue string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return metricstest.Value(t, byName, name, "queue", queue)
}

func TestQueues_ExportsDepthAndConsumersOfEveryQueue(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	publish(t, conn, topo.Queue, 2)
	publish(t, conn, topo.DeadQueue, 1)
	consumer, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if err := consumer.Qos(1, 0, false /* global */); err != nil {
		t.Fatal(err)
	}
	// Holds one of the two messages unacked: depth counts ready messages only.
	if _, err := consumer.Consume(topo.Queue, "", false /* autoAck */, false /* exclusive */, false /* noLocal */, false /* noWait */, nil); err != nil {
		t.Fatal(err)
	}

	q := metrics.NewQueues(topo, time.Hour) // only Attach's own poll
	reg := runQueues(t, q)
	if names := metricstest.Gathered(t, reg); len(names) != 0 {
		t.Errorf("exported %v before any connection was attached, want nothing", names)
	}
	q.Attach(conn)
	brokertest.Eventually(t, 5*time.Second, "the first poll", func() bool {
		_, ok := value(t, reg, metrics.QueueMessages, topo.Queue)
		return ok
	})
	want := map[string][2]float64{topo.Queue: {1, 1}, topo.DeadQueue: {1, 0}}
	for _, tier := range topo.Tiers() {
		want[tier.Queue] = [2]float64{0, 0}
	}
	for queue, w := range want {
		msgs, ok1 := value(t, reg, metrics.QueueMessages, queue)
		cons, ok2 := value(t, reg, metrics.QueueConsumers, queue)
		if !ok1 || !ok2 || msgs != w[0] || cons != w[1] {
			t.Errorf("%s: messages %v (%v), consumers %v (%v); want %v ready and %v consumers", queue, msgs, ok1, cons, ok2, w[0], w[1])
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}

	q.Detach()
	if names := metricstest.Gathered(t, reg); len(names) != 0 {
		t.Errorf("exported %v after Detach, want nothing (the values would be stale)", names)
	}
}

func TestQueues_MissingQueueDoesNotHideTheOthers(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	gone := topo.Tiers()[0].Queue
	if _, err := ch.QueueDelete(gone, false /* ifUnused */, false /* ifEmpty */, false /* noWait */); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	publish(t, conn, topo.DeadQueue, 3) // the dead queue comes after the missing tier

	q := metrics.NewQueues(topo, 50*time.Millisecond)
	reg := runQueues(t, q)
	q.Attach(conn)
	brokertest.Eventually(t, 5*time.Second, "the dead queue's depth", func() bool {
		n, ok := value(t, reg, metrics.QueueMessages, topo.DeadQueue)
		return ok && n == 3
	})
	if _, ok := value(t, reg, metrics.QueueMessages, gone); ok {
		t.Errorf("%s was deleted but is still exported", gone)
	}
	// The poller's channel failures must not cost the connection.
	if conn.IsClosed() {
		t.Error("the connection closed")
	}
}

func TestQueues_ZeroIntervalIsOff(t *testing.T) {
	q := metrics.NewQueues(topology.New(brokertest.Config(t)), 0)
	done := make(chan struct{})
	go func() { q.Run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run with interval 0 did not return")
	}
}
