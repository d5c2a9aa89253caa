package forwarder_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// senderFunc adapts a function to forwarder.Sender.
type senderFunc func(context.Context, delivery.Request) delivery.Result

func (f senderFunc) Deliver(ctx context.Context, r delivery.Request) delivery.Result {
	return f(ctx, r)
}

// A message that makes delivery panic costs an attempt, not the process: it
// is retried like any failure and the forwarder goes on.
func TestForwarder_PanicBecomesAFailedAttempt(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attachPublisher(t, conn)

	var calls atomic.Int32
	delivered := make(chan int, 1)
	sender := senderFunc(func(_ context.Context, r delivery.Request) delivery.Result {
		if calls.Add(1) == 1 {
			panic("bug triggered by this message")
		}
		delivered <- r.Attempt
		return delivery.Result{Status: 200}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, MinMessages: 3, ProbeInterval: time.Second, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	fwd := forwarder.New(forwarder.Options{Concurrency: 1, Prefetch: 1, DeliveryTimeout: time.Second,
		PublishTimeout: 5 * time.Second, HoldMax: time.Minute}, topo, pub, sender, brk, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Consume(ctx, conn) }()

	ctxPub, cancelPub := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelPub()
	if err := pub.Publish(ctxPub, topo.Exchange, topo.Queue, envelope.New("boom", []byte("{}"), time.Now())); err != nil {
		t.Fatal(err)
	}
	select {
	case attempt := <-delivered:
		if attempt != 2 {
			t.Errorf("delivered on attempt %d, want 2: the panic must count as attempt 1", attempt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message was not retried after the panic")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("consume: %v", err)
	}
}

// A message that cannot reach the backend while others can (a backend that
// drops some connections) is tried again, but not in a tight loop.
func TestForwarder_UncountedRetriesSlowDown(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attachPublisher(t, conn)

	var dropped, others atomic.Int32
	sender := senderFunc(func(_ context.Context, r delivery.Request) delivery.Result {
		if r.ID == "dropped" {
			dropped.Add(1)
			return delivery.Result{Err: errors.New("connection reset by peer")}
		}
		others.Add(1)
		time.Sleep(5 * time.Millisecond)
		return delivery.Result{Status: 200}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	brk := breaker.New(breaker.Options{Threshold: 5, MinMessages: 3, ProbeInterval: time.Second, ProbeMax: time.Second}, log)
	t.Cleanup(brk.Stop)
	fwd := forwarder.New(forwarder.Options{Concurrency: 2, Prefetch: 2, DeliveryTimeout: time.Second,
		PublishTimeout: 5 * time.Second, HoldMax: time.Minute}, topo, pub, sender, brk, log)

	ctxPub, cancelPub := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelPub()
	publish := func(id string) {
		if err := pub.Publish(ctxPub, topo.Exchange, topo.Queue, envelope.New(id, []byte("{}"), time.Now())); err != nil {
			t.Error(err) // Error, not Fatal: called from other goroutines too
		}
	}
	publish("dropped")
	var wg sync.WaitGroup
	for i := range 400 { // concurrently: confirms pipeline
		wg.Go(func() { publish(fmt.Sprint("ok-", i)) })
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- fwd.Consume(ctx, conn) }()
	brokertest.Eventually(t, 10*time.Second, "1.5s of deliveries", func() bool { return time.Since(started) > 1500*time.Millisecond })
	got, delivered := dropped.Load(), others.Load()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("consume: %v", err)
	}
	if delivered < 20 {
		t.Fatalf("only %d other messages delivered: the scenario needs a healthy backend beside the dropped one", delivered)
	}
	// Pauses of 0, 0, 100, 200, 300, 400, 500ms...: about 7 tries in 1.5s.
	if got < 2 || got > 15 {
		t.Errorf("the dropped message was tried %d times in 1.5s, want a handful (paced), not a tight loop", got)
	}
	t.Logf("dropped message tried %d times while %d others were delivered", got, delivered)
}
