package forwarder_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

// eventsHarness runs a forwarder with events on; its consumer has a
// connection of its own, which a test may cut.
type eventsHarness struct {
	*harness
	fwd     *forwarder.Forwarder
	consume func(t *testing.T) // starts a consumer on a fresh connection
}

func startWithEvents(t *testing.T, cfg topology.Config, endpoint string, wrap func(events.Publisher) events.Publisher) *eventsHarness {
	t.Helper()
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.WithEvents(cfg))
	pub := attachPublisher(t, conn)
	var evPub events.Publisher = pub
	if wrap != nil {
		evPub = wrap(pub)
	}
	client := delivery.NewClient(endpoint, 4)
	t.Cleanup(client.Close)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, Window: 20, FailureRate: 0.8, MinMessages: 3, ProbeInterval: 200 * time.Millisecond, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	fwd := forwarder.New(forwarder.Options{
		Concurrency: 2, Prefetch: 2, DeliveryTimeout: 2 * time.Second, PublishTimeout: 5 * time.Second,
		NonRetryable: map[int]bool{422: true}, HoldMax: time.Minute, Observer: &recorder{},
		Events: events.NewEmitter(evPub, topo.Events, "forwarder", 5*time.Second),
	}, topo, pub, client, brk, log)
	h := &eventsHarness{harness: &harness{topo: topo, conn: conn, pub: pub, brk: brk, logs: logs}, fwd: fwd}
	h.consume = func(t *testing.T) {
		c := brokertest.Dial(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- fwd.Consume(ctx, c) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return h
}

func (h *eventsHarness) wait(t *testing.T, id, status string, attempts int) events.Registration {
	t.Helper()
	return brokertest.WaitEvents(t, h.conn, h.topo.Events, id, 20*time.Second, func(r events.Registration) bool {
		return r.Status == status && len(r.Attempts) >= attempts
	})
}

func TestForwarderEvents_DeliveredAtOnce(t *testing.T) {
	be := newBackend(t, always(200))
	h := startWithEvents(t, brokertest.Config(t), be.URL, nil)
	h.consume(t)
	h.publish(t, "ev-once", seedBody)

	r := h.wait(t, "ev-once", events.StatusDelivered, 1)
	if len(r.Attempts) != 1 || r.Attempts[0].Outcome != "delivered" || r.Attempts[0].Status != 200 || r.Attempts[0].Attempt != 1 {
		t.Errorf("attempts: %+v", r.Attempts)
	}
	if r.AcceptedAt == nil || r.DeliveredAt == nil || r.DeliveredAt.Before(*r.AcceptedAt) {
		t.Errorf("accepted_at %v, delivered_at %v", r.AcceptedAt, r.DeliveredAt)
	}
}

func TestForwarderEvents_DeliveredOnTheThirdAttempt(t *testing.T) {
	be := newBackend(t, func(n int) (int, http.Header) {
		if n < 3 {
			return 503, nil
		}
		return 200, nil
	})
	h := startWithEvents(t, brokertest.Config(t), be.URL, nil)
	h.consume(t)
	h.publish(t, "ev-third", seedBody)

	r := h.wait(t, "ev-third", events.StatusDelivered, 3)
	want := []struct {
		status  int
		outcome string
	}{{503, "retry"}, {503, "retry"}, {200, "delivered"}}
	if len(r.Attempts) != 3 {
		t.Fatalf("attempts: %+v", r.Attempts)
	}
	for i, w := range want {
		a := r.Attempts[i]
		if a.Attempt != i+1 || a.Status != w.status || a.Outcome != w.outcome || a.Duplicate {
			t.Errorf("attempt %d: %+v, want %+v", i+1, a, w)
		}
	}
	scheduled := 0
	for _, e := range r.History {
		if e.Type == events.TypeRetryScheduled {
			scheduled++
			if e.Tier == "" || e.Due == nil || !e.Due.After(e.At) {
				t.Errorf("retry_scheduled without tier or due: %+v", e)
			}
		}
	}
	if scheduled != 2 {
		t.Errorf("%d retry_scheduled events, want 2", scheduled)
	}
}

func TestForwarderEvents_DeadLetteredRedrivenDelivered(t *testing.T) {
	var ok atomic.Bool
	be := newBackend(t, func(int) (int, http.Header) {
		if ok.Load() {
			return 200, nil
		}
		return 422, nil
	})
	h := startWithEvents(t, brokertest.Config(t), be.URL, nil)
	h.consume(t)
	h.publish(t, "ev-dead", seedBody)

	r := h.wait(t, "ev-dead", events.StatusDead, 1)
	if r.Reason != "non-retryable" || r.DeadLetteredAt == nil {
		t.Errorf("dead: reason %q at %v", r.Reason, r.DeadLetteredAt)
	}
	ok.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	brokertest.Eventually(t, 10*time.Second, "the dead letter", func() bool { return brokertest.Depth(t, h.conn, h.topo.DeadQueue) == 1 })
	if res, err := deadletter.Redrive(ctx, h.conn, h.topo, deadletter.Filter{IDs: []string{"ev-dead"}}, 0); err != nil || res.Done != 1 {
		t.Fatalf("redrive: %+v, %v", res, err)
	}
	r = h.wait(t, "ev-dead", events.StatusDelivered, 2)
	if r.Redrives != 1 || len(r.Attempts) != 2 || r.Attempts[0].Outcome != "dead-lettered" || r.Attempts[1].Redrive != 1 || r.Attempts[1].Attempt != 1 {
		t.Errorf("after redrive: redrives %d, attempts %+v", r.Redrives, r.Attempts)
	}
	var types []string
	for _, e := range r.History {
		types = append(types, e.Type)
	}
	t.Logf("history: %v", types)
}

// cutOnDelivered closes the consumer's connection right after the broker
// confirmed the first delivered event: the forwarder dies, in effect,
// between its delivered event and its ack.
type cutOnDelivered struct {
	events.Publisher
	cut  func()
	done atomic.Bool
}

func (c *cutOnDelivered) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	err := c.Publisher.Publish(ctx, exchange, key, msg)
	if err != nil || msg.Type != events.MessageType {
		return err
	}
	evs, _ := events.ParseMessage(msg.Body)
	for _, e := range evs {
		if e.Type == events.TypeDelivered && c.done.CompareAndSwap(false, true) {
			c.cut()
		}
	}
	return err
}

func TestForwarderEvents_CrashBetweenDeliveryAndAckShowsADuplicateAttempt(t *testing.T) {
	be := newBackend(t, always(200))
	consumer := make(chan *amqp.Connection, 1)
	cut := &cutOnDelivered{cut: func() { _ = (<-consumer).Close() }}
	h := startWithEvents(t, brokertest.Config(t), be.URL, func(p events.Publisher) events.Publisher { cut.Publisher = p; return cut })

	// The first consumer, whose connection is cut after the event.
	c := brokertest.Dial(t)
	consumer <- c
	done := make(chan error, 1)
	go func() { done <- h.fwd.Consume(context.Background(), c) }()
	h.publish(t, "ev-crash", seedBody)
	select {
	case err := <-done:
		t.Logf("first consumer ended: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the first consumer did not lose its connection")
	}
	// A new forwarder session gets the message again, unacked.
	h.consume(t)
	r := h.wait(t, "ev-crash", events.StatusDelivered, 2)
	if len(r.Attempts) != 2 || r.Attempts[0].Duplicate || !r.Attempts[1].Duplicate || r.Attempts[1].Attempt != 1 {
		t.Errorf("attempts: %+v, want attempt 1 and attempt 1 again marked duplicate", r.Attempts)
	}
	if n := len(be.waitRequests(t, 2, 5*time.Second)); n != 2 {
		t.Errorf("backend saw %d requests, want 2 (the second deduped by Idempotency-Key)", n)
	}
}
