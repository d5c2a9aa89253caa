package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func attached(t *testing.T, conn *amqp.Connection, channels int) *broker.Publisher {
	t.Helper()
	pub := broker.NewPublisher(channels)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Detach)
	return pub
}

func publish(pub *broker.Publisher, exchange, key, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pub.Publish(ctx, exchange, key, envelope.New(id, []byte(`{}`), time.Now()))
}

func TestPublisher_ConfirmedMessagesAreStored(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attached(t, conn, 3)

	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- publish(pub, topo.Exchange, topo.Queue, fmt.Sprint("m", i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if got := brokertest.Depth(t, conn, topo.Queue); got != n {
		t.Errorf("queue holds %d messages after %d confirmed publishes", got, n)
	}
	d := brokertest.Get(t, conn, topo.Queue, time.Second)
	if d.DeliveryMode != amqp.Persistent {
		t.Errorf("delivery mode %d, want persistent", d.DeliveryMode)
	}
}

// An exchange with no binding for the key acks the publish but returns it:
// that must not count as stored.
func TestPublisher_UnroutableIsAnError(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attached(t, conn, 1)

	// Routable and unroutable publishes interleaved on one channel: each gets its own answer.
	for i := range 20 {
		key := topo.Queue
		if i%2 == 1 {
			key = "no-such-key"
		}
		err := publish(pub, topo.Exchange, key, fmt.Sprint("m", i))
		if key == topo.Queue && err != nil {
			t.Errorf("routable publish %d: %v", i, err)
		}
		if key != topo.Queue && !errors.Is(err, broker.ErrUnroutable) {
			t.Errorf("unroutable publish %d: %v, want ErrUnroutable", i, err)
		}
	}
	if got := brokertest.Depth(t, conn, topo.Queue); got != 10 {
		t.Errorf("queue holds %d, want the 10 routable messages", got)
	}
}

// Routable and unroutable publishes in flight together on one channel: a
// return names only the message, and must fail its own publish, never a
// routed one's; the stored messages carry no publisher bookkeeping.
func TestPublisher_ConcurrentReturnsFailOnlyTheirOwn(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attached(t, conn, 1)

	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		key := topo.Queue
		if i%4 == 3 {
			key = "no-such-key"
		}
		wg.Go(func() { errs[i] = publish(pub, topo.Exchange, key, fmt.Sprint("m", i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if i%4 == 3 && !errors.Is(err, broker.ErrUnroutable) {
			t.Errorf("unroutable publish %d: %v, want ErrUnroutable", i, err)
		}
		if i%4 != 3 && err != nil {
			t.Errorf("routable publish %d: %v", i, err)
		}
	}
	if got := brokertest.Depth(t, conn, topo.Queue); got != n-n/4 {
		t.Errorf("queue holds %d, want the %d routable messages", got, n-n/4)
	}
	d := brokertest.Get(t, conn, topo.Queue, time.Second)
	if _, ok := d.Headers[broker.HeaderPublishSeq]; ok {
		t.Errorf("stored message carries %s: %v", broker.HeaderPublishSeq, d.Headers)
	}
}

// A queue that refuses new messages (full, overflow reject-publish) nacks.
func TestPublisher_NackIsAnError(t *testing.T) {
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q := brokertest.Prefix(t) + ".full"
	_, err = ch.QueueDeclare(q, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeClassic, amqp.QueueMaxLenArg: int64(1), amqp.QueueOverflowArg: amqp.QueueOverflowRejectPublish,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // on a channel of its own: ch is closed by then
		if c, err := brokertest.Dial(t).Channel(); err == nil {
			_, _ = c.QueueDelete(q, false, false, false)
		}
	})
	pub := attached(t, conn, 1)

	if err := publish(pub, "", q, "first"); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if err := publish(pub, "", q, "second"); !errors.Is(err, broker.ErrNacked) {
		t.Errorf("publish to a full queue: %v, want ErrNacked", err)
	}
}

func TestPublisher_UnavailableWhenDetachedOrBlocked(t *testing.T) {
	pub := broker.NewPublisher(1)
	if err := publish(pub, "x", "y", "m"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("publish before Attach: %v, want ErrUnavailable", err)
	}
	if pub.Ready() {
		t.Error("Ready before Attach")
	}

	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub = attached(t, conn, 1)
	pub.SetBlocked(true)
	if err := publish(pub, topo.Exchange, topo.Queue, "m"); !errors.Is(err, broker.ErrUnavailable) || pub.Ready() {
		t.Errorf("publish while blocked: %v (ready %v), want ErrUnavailable", err, pub.Ready())
	}
	pub.SetBlocked(false)
	if err := publish(pub, topo.Exchange, topo.Queue, "m"); err != nil {
		t.Errorf("publish after unblock: %v", err)
	}
	pub.Detach()
	if err := publish(pub, topo.Exchange, topo.Queue, "m"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("publish after Detach: %v, want ErrUnavailable", err)
	}
}

// When the connection dies, publishes waiting for their confirm fail; none
// reports success.
func TestPublisher_ConnectionLossFailsPendingPublishes(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	other := brokertest.Dial(t)
	pub := attached(t, other, 2)

	const n = 2000
	results := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results <- publish(pub, topo.Exchange, topo.Queue, fmt.Sprint("m", i)) })
	}
	other.Close()
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, broker.ErrUnavailable) && !errors.Is(err, broker.ErrNotConfirmed) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	// Every publish reported as stored is in the queue (more may be: those
	// whose confirm was lost with the connection).
	if depth := brokertest.Depth(t, conn, topo.Queue); depth < ok {
		t.Errorf("%d publishes reported stored but the queue holds %d", ok, depth)
	}
	t.Logf("%d of %d confirmed before the connection closed", ok, n)
}

// A publish to a missing exchange makes the broker close the channel: the
// publish fails and Broken closes, so the session can start over.
func TestPublisher_ChannelErrorClosesBroken(t *testing.T) {
	conn := brokertest.Dial(t)
	pub := attached(t, conn, 1)
	select {
	case <-pub.Broken():
		t.Fatal("Broken closed before anything went wrong")
	default:
	}
	if err := publish(pub, "no-such-exchange-"+brokertest.Prefix(t), "k", "m"); err == nil {
		t.Fatal("publish to a missing exchange succeeded")
	}
	select {
	case <-pub.Broken():
	case <-time.After(5 * time.Second):
		t.Fatal("Broken did not close after the broker closed the channel")
	}
}

func TestPublisher_UnroutableClosesBroken(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	pub := attached(t, conn, 1)
	if err := publish(pub, topo.Exchange, "unbound-key", "m"); !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("publish: %v, want ErrUnroutable", err)
	}
	select {
	case <-pub.Broken():
	default:
		t.Error("Broken still open after an unroutable publish")
	}
}

// WaitAttached lets a consumer on another connection run only while moves
// can be published: it returns once channels are attached, with a channel
// that closes when they are detached.
func TestPublisher_WaitAttached(t *testing.T) {
	conn := brokertest.Dial(t)
	pub := broker.NewPublisher(1)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := pub.WaitAttached(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before Attach: %v, want the context's deadline", err)
	}

	got := make(chan (<-chan struct{}), 1)
	go func() {
		b, err := pub.WaitAttached(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	broken := <-got
	select {
	case <-broken:
		t.Fatal("broken while attached")
	default:
	}
	pub.Detach()
	<-broken // closes on Detach; the test's deadline catches a hang

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := pub.WaitAttached(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after Detach: %v, want the context's deadline", err)
	}
}
