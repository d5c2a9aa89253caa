package forwarder_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

// switchable is a publisher that fails while off, as one blocked by a
// resource alarm does, and publishes for real while on.
type switchable struct {
	*broker.Publisher
	off   atomic.Bool
	tries atomic.Int32
}

func (s *switchable) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	s.tries.Add(1)
	if s.off.Load() {
		return fmt.Errorf("%w: connection blocked by a broker resource alarm", broker.ErrUnavailable)
	}
	return s.Publisher.Publish(ctx, exchange, key, msg)
}

// A move that cannot be published is parked, not held by its worker: with a
// single worker, the messages after a failed one are still delivered while
// publishing is down, and the failed one goes to its retry tier once
// publishing works again, without another attempt in between.
func TestForwarder_FailedMovesDoNotHoldTheWorkers(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	real := attachPublisher(t, conn)
	pub := &switchable{Publisher: real}

	be := newBackend(t, func(int) (int, http.Header) { return 200, nil })
	var failAttempts atomic.Int32
	sender := senderFunc(func(ctx context.Context, r delivery.Request) delivery.Result {
		if r.ID == "fails" {
			failAttempts.Add(1)
			return delivery.Result{Status: 500, Err: &delivery.StatusError{Code: 500}}
		}
		return delivery.NewClient(be.URL, 1).Deliver(ctx, r)
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, Window: 20, FailureRate: 0.8, MinMessages: 3, ProbeInterval: time.Second, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	obs := &recorder{}
	fwd := forwarder.New(forwarder.Options{Concurrency: 1, Prefetch: 4, DeliveryTimeout: time.Second,
		PublishTimeout: time.Second, HoldMax: time.Minute, Observer: obs}, topo, pub, sender, brk, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Consume(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})

	publish := func(id string) {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer pcancel()
		if err := real.Publish(pctx, topo.Exchange, topo.Queue, envelope.New(id, []byte(seedBody), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	pub.off.Store(true)
	publish("fails")
	for i := range 5 {
		publish(fmt.Sprint("ok-", i))
	}
	be.waitRequests(t, 5, 10*time.Second) // one worker, and its move parked
	if n := failAttempts.Load(); n != 1 {
		t.Errorf("the failed message was attempted %d times while its move was parked, want 1", n)
	}
	brokertest.Eventually(t, 5*time.Second, "the parked move to be tried again", func() bool { return pub.tries.Load() >= 3 })
	if n := failAttempts.Load(); n != 1 {
		t.Errorf("the failed message was attempted %d times while its move was parked, want 1", n)
	}

	pub.off.Store(false)
	brokertest.Eventually(t, 10*time.Second, "the parked move to reach its retry tier", func() bool {
		return failAttempts.Load() == 2 // back from the tier for attempt 2
	})
	if n := brokertest.Depth(t, conn, topo.DeadQueue); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// A move that never gets published hands its message back to the queue at
// HoldMax, not sooner: it is not lost, and it is not retried in a tight loop.
func TestForwarder_ParkedMoveHandsTheMessageBackAtHoldMax(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	real := attachPublisher(t, conn)
	pub := &switchable{Publisher: real}
	pub.off.Store(true)

	attempts := make(chan time.Time, 100)
	sender := senderFunc(func(context.Context, delivery.Request) delivery.Result {
		attempts <- time.Now()
		return delivery.Result{Status: 500, Err: &delivery.StatusError{Code: 500}}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, Window: 20, FailureRate: 0.8, MinMessages: 3, ProbeInterval: time.Second, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	const holdMax = 700 * time.Millisecond
	fwd := forwarder.New(forwarder.Options{Concurrency: 2, Prefetch: 2, DeliveryTimeout: time.Second,
		PublishTimeout: time.Second, HoldMax: holdMax}, topo, pub, sender, brk, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Consume(ctx, conn) }()

	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	if err := real.Publish(pctx, topo.Exchange, topo.Queue, envelope.New("stuck", []byte("{}"), time.Now())); err != nil {
		t.Fatal(err)
	}
	first := <-attempts
	var second time.Time
	select {
	case second = <-attempts:
	case <-time.After(10 * time.Second):
		t.Fatal("the message never came back after its move was given up")
	}
	if gap := second.Sub(first); gap < holdMax {
		t.Errorf("attempted again after %s, want the hold of %s first", gap, holdMax)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("consume: %v", err)
	}
	// Shut down with publishing still off: the message is handed back, not
	// lost. A nack and a channel close are not confirmed by the broker, and a
	// quorum queue applies the return through its log: wait for it to show.
	n := 0
	brokertest.Eventually(t, 10*time.Second, "the message back in the main queue after shutdown", func() bool {
		n = brokertest.Depth(t, conn, topo.Queue)
		return n >= 1
	})
	if n != 1 {
		t.Errorf("main queue holds %d after shutdown, want the message back (1)", n)
	}
}
