package index_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/services/ingress/internal/index"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) Delivered(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }
func (l *latencies) n() int                    { l.mu.Lock(); defer l.mu.Unlock(); return len(l.d) }

// waitStatus polls the index (a lookup is what a client does too) until id
// has status.
func waitStatus(t *testing.T, x *index.Index, id, status string) events.Registration {
	t.Helper()
	var r events.Registration
	brokertest.Eventually(t, 10*time.Second, id+" "+status, func() bool {
		var err error
		r, _, err = x.Registration(id)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status == status
	})
	return r
}

func TestIndex_FollowsTheStreamAndResumesFromItsOffset(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.WithEvents(brokertest.Config(t)))
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	em := events.NewEmitter(pub, topo.Events, "test", 5*time.Second)
	emit := func(evs ...events.Event) {
		t.Helper()
		if err := em.EmitAll(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "index.db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	obs := &latencies{}
	run := func(x *index.Index) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		c := brokertest.Dial(t)
		go func() { done <- x.Consume(ctx, c, topo.Events, log) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consume: %v", err)
			}
			_ = c.Close()
		}
	}
	queues := index.Queues{Main: topo.Queue, Dead: topo.DeadQueue}
	x, err := index.Open(path, queues, obs)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(x)

	t0 := time.Now().Add(-time.Minute)
	acc := events.TimePtr(t0)
	emit(events.Event{Type: events.TypeAccepted, ID: "a", At: t0, Client: "booking"},
		events.Event{Type: events.TypeAccepted, ID: "b", At: t0.Add(time.Second)})
	waitStatus(t, x, "a", events.StatusAccepted)
	waitStatus(t, x, "b", events.StatusAccepted)
	oldest, err := x.Oldest()
	if err != nil || !oldest[topo.Queue].Equal(t0) {
		t.Errorf("oldest waiting: %v, %v; want %s since %v", oldest, err, topo.Queue, t0)
	}
	emit(events.Event{Type: events.TypeAttempt, ID: "a", At: t0.Add(2 * time.Second), Attempt: 1, Status: 200, Outcome: "delivered", DurationMS: events.Ms(time.Millisecond), AcceptedAt: acc},
		events.Event{Type: events.TypeDelivered, ID: "a", At: t0.Add(2 * time.Second), Attempt: 1, AcceptedAt: acc})
	r := waitStatus(t, x, "a", events.StatusDelivered)
	if r.Client != "booking" || len(r.Attempts) != 1 {
		t.Errorf("a: %+v", r)
	}
	if obs.n() != 1 {
		t.Errorf("%d delivery latencies observed, want 1", obs.n())
	}
	if oldest, _ := x.Oldest(); !oldest[topo.Queue].Equal(t0.Add(time.Second)) {
		t.Errorf("oldest after a's delivery: %v, want b's %v", oldest, t0.Add(time.Second))
	}

	// Restart: events published while the index is down are applied once
	// it is back, and those applied before are not applied again.
	stop()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	emit(events.Event{Type: events.TypeAttempt, ID: "b", At: t0.Add(3 * time.Second), Attempt: 1, Status: 500, Outcome: "retry", DurationMS: events.Ms(time.Millisecond)},
		events.Event{Type: events.TypeRetryScheduled, ID: "b", At: t0.Add(3 * time.Second), Attempt: 1, Tier: topo.Queue + ".retry.1s", Due: events.TimePtr(t0.Add(4 * time.Second))})
	x, err = index.Open(path, queues, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	stop = run(x)
	defer stop()
	r = waitStatus(t, x, "b", events.StatusRetrying)
	if r.NextAttemptAt == nil || len(r.Attempts) != 1 {
		t.Errorf("b: %+v", r)
	}
	if r, _, _ := x.Registration("a"); len(r.History) != 3 {
		t.Errorf("a has %d events after the restart, want 3 (none applied twice)", len(r.History))
	}
	if oldest, _ := x.Oldest(); len(oldest) != 1 || !oldest[topo.Queue+".retry.1s"].Equal(t0.Add(3*time.Second)) {
		t.Errorf("oldest: %v, want b in the retry tier only", oldest)
	}
	if _, ok, err := x.Registration("never"); ok || err != nil {
		t.Errorf("unknown id: ok %v, err %v", ok, err)
	}
}
