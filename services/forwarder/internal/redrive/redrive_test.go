package redrive_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
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
	"github.com/railco/relay/services/forwarder/internal/redrive"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logs is a log destination a test can read while the redriver writes.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

// kill dead-letters d after its last attempt, as the forwarder does.
func kill(t *testing.T, conn *amqp.Connection, topo *topology.Topology, d amqp.Delivery, reason string) {
	t.Helper()
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	msg := envelope.Dead(d, envelope.Attempt{Number: topo.MaxAttempts, At: now, Status: 503, Err: "down"}, reason, now)
	if err := pub.Publish(ctx, topo.DeadExchange, "", msg); err != nil {
		t.Fatalf("dead-letter %s: %v", d.MessageId, err)
	}
}

func fresh(id string, redrives int) amqp.Delivery {
	p := envelope.New(id, []byte(`{}`), time.Now())
	if redrives > 0 {
		p.Headers[envelope.HeaderRedriveCount] = int32(redrives)
	}
	return amqp.Delivery{MessageId: p.MessageId, ContentType: p.ContentType, Timestamp: p.Timestamp, Headers: p.Headers, Body: p.Body}
}

// A max-attempts letter comes back each round until it has been redriven
// MaxRedrives times, then stays; letters dead for other reasons never move.
func TestRedriver_RedrivesMaxAttemptsLettersUpToTheLimit(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	kill(t, conn, topo, fresh("refused", 0), envelope.ReasonNonRetryable)
	kill(t, conn, topo, fresh("crash-loop", 0), envelope.ReasonRejectedByBroker)
	kill(t, conn, topo, fresh("worn-out", 2), envelope.ReasonMaxAttempts)
	kill(t, conn, topo, fresh("poison", 0), envelope.ReasonMaxAttempts)

	out := &logs{}
	r := redrive.New(redrive.Options{Interval: 100 * time.Millisecond, MaxRedrives: 2}, topo, slog.New(slog.NewTextHandler(out, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, brokertest.Dial(t)) }()

	for round := 1; round <= 2; round++ {
		d := brokertest.Get(t, conn, topo.Queue, 5*time.Second)
		m := envelope.Read(d)
		if d.MessageId != "poison" || m.RedriveCount != round || m.Attempts != 0 || m.Reason != "" {
			t.Fatalf("redrive %d: got %s with %+v", round, d.MessageId, m)
		}
		kill(t, conn, topo, d, envelope.ReasonMaxAttempts) // it fails again
	}
	// Now at its limit: rounds go by and nothing comes back.
	brokertest.Eventually(t, 5*time.Second, "two rounds with nothing to redrive", func() bool {
		return out.count("redrove 0 dead letters (max-attempts)") >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if n := out.count("redrove 1 dead letters (max-attempts)"); n != 2 {
		t.Errorf("logged %d rounds that redrove 1 letter, want 2; log:\n%s", n, out.buf.String())
	}
	if main, dead := brokertest.Depth(t, conn, topo.Queue), brokertest.Depth(t, conn, topo.DeadQueue); main != 0 || dead != 4 {
		t.Errorf("main %d, dead %d; want 0 and all four dead", main, dead)
	}
}

func TestRedriver_StopsWhenTheConnectionCloses(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := topology.New(brokertest.Config(t))
	r := redrive.New(redrive.Options{Interval: time.Hour, MaxRedrives: 3}, topo, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), conn) }()
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrConnectionLost) {
			t.Errorf("Run = %v, want ErrConnectionLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run went on after its connection closed")
	}
}

// A round that fails (here: no dead-letter queue yet) is logged, and Run
// keeps going.
func TestRedriver_FailedRoundIsLoggedAndRunGoesOn(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := topology.New(brokertest.Config(t)) // not declared
	out := &logs{}
	r := redrive.New(redrive.Options{Interval: 50 * time.Millisecond, MaxRedrives: 3}, topo, slog.New(slog.NewTextHandler(out, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, conn) }()
	brokertest.Eventually(t, 5*time.Second, "two failed rounds", func() bool { return out.count("scheduled redrive failed") >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
