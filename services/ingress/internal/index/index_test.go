package index_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

// An index file of an older layout (no format recorded, other buckets) is
// emptied at Open: it has no offset, so the index is rebuilt from the
// stream's first event, and what it held is not read as this layout.
func TestOpen_AnOlderLayoutIsRebuiltFromTheStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"events", "state", "waiting", "meta"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if name == "meta" {
				if err := b.Put([]byte("offset"), []byte{0, 0, 0, 0, 0, 0, 0, 42}); err != nil {
					return err
				}
			}
		}
		return tx.Bucket([]byte("state")).Put([]byte("id-1"), []byte("old layout"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	x, err := index.Open(path, index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := x.Offset(); err != nil || ok {
		t.Fatalf("offset after opening an older layout: ok %v, err %v; want none (rebuild from the first event)", ok, err)
	}
	if _, ok, err := x.Registration("id-1"); err != nil || ok {
		t.Fatalf("id-1 after opening an older layout: ok %v, err %v; want unknown", ok, err)
	}
	at := time.Now()
	if _, err := x.Apply([]index.Record{{Offset: 7, Body: events.Message([]events.Event{{Type: events.TypeAccepted, ID: "id-2", At: at, AcceptedAt: &at}}).Body}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the new layout is kept.
	x, err = index.Open(path, index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if off, ok, err := x.Offset(); err != nil || !ok || off != 7 {
		t.Fatalf("offset after reopening: %d %v %v; want 7", off, ok, err)
	}
	if r, ok, err := x.Registration("id-2"); err != nil || !ok || r.Status != events.StatusAccepted {
		t.Fatalf("id-2: %+v %v %v", r, ok, err)
	}
}

// An index follows one stream. Pointed at another (another prefix, another
// vhost: offsets that mean nothing there), it is emptied and built again
// from that stream's first event, rather than resuming at an offset of the
// old one and missing what comes before it.
func TestIndex_AnotherStreamRebuildsIt(t *testing.T) {
	conn := brokertest.Dial(t)
	one := brokertest.Declare(t, conn, brokertest.WithEvents(brokertest.Config(t)))
	cfg := brokertest.WithEvents(brokertest.Config(t))
	cfg.Prefix += ".two"
	two := brokertest.Declare(t, conn, cfg)
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	emit := func(stream, id string) {
		t.Helper()
		if err := events.NewEmitter(pub, stream, "test", 5*time.Second).Emit(context.Background(), events.Event{Type: events.TypeAccepted, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	emit(one.Events, "in-one")
	emit(two.Events, "in-two")
	emit(two.Events, "in-two-also")

	x, err := index.Open(filepath.Join(t.TempDir(), "index.db"), index.Queues{Main: one.Queue, Dead: one.DeadQueue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	consume := func(stream, id string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		c := brokertest.Dial(t)
		go func() { done <- x.Consume(ctx, c, stream, log) }()
		waitStatus(t, x, id, events.StatusAccepted)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume %s: %v", stream, err)
		}
		_ = c.Close()
	}
	known := func(id string) bool {
		t.Helper()
		_, ok, err := x.Registration(id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	consume(two.Events, "in-two-also") // offset 1 of two
	consume(one.Events, "in-one")      // offset 0 of one: missed had it resumed at 2
	if known("in-two") || known("in-two-also") {
		t.Error("registrations of the other stream are still known")
	}
	consume(two.Events, "in-two") // from two's first event again
	if !known("in-two-also") || known("in-one") {
		t.Errorf("back on the first stream: in-two-also known %v, in-one known %v; want true, false", known("in-two-also"), known("in-one"))
	}
}
