package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/events"
)

// counting is a Publisher that takes a millisecond per message, as a
// broker's confirm does, and counts the messages and their events.
type counting struct {
	mu       sync.Mutex
	messages int
	events   int
}

func (c *counting) Publish(_ context.Context, _, _ string, msg amqp.Publishing) error {
	time.Sleep(time.Millisecond)
	evs, err := events.ParseMessage(msg.Body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.messages++
	c.events += len(evs)
	c.mu.Unlock()
	return nil
}

func (c *counting) counts() (messages, evs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.messages, c.events
}

func event(i int) events.Event {
	return events.Event{ID: "reg-" + string(rune('a'+i%26)), Type: events.TypeAccepted}
}

// Under a steady stream of events the flusher lingers before every message,
// not only its first: the messages (each a chunk of the stream, paid for by
// the broker whatever it holds) come at most one per linger.
func TestEmitter_LingersBeforeEveryMessage(t *testing.T) {
	pub := &counting{}
	const linger = 20 * time.Millisecond
	e := events.NewEmitter(pub, "events", "test", time.Second).SetLinger(linger)
	start := time.Now()
	posted := 0
	for time.Since(start) < 200*time.Millisecond {
		e.Post(event(posted), nil)
		posted++
		time.Sleep(200 * time.Microsecond) // a steady stream, ~5,000/s at most
	}
	e.Wait()
	messages, evs := pub.counts()
	if evs != posted {
		t.Fatalf("%d events published, %d posted", evs, posted)
	}
	// 200 ms of posting and one last linger: about 11 messages; without a
	// linger before each, one per millisecond's publish (~200).
	if limit := int(time.Since(start)/linger) + 2; messages > limit {
		t.Errorf("%d messages for %d events in %s, want at most %d (one per %s linger)", messages, evs, time.Since(start).Round(time.Millisecond), limit, linger)
	}
}

// A whole message's worth of waiting events goes out without lingering:
// lingering would only let them pile up.
func TestEmitter_DoesNotLingerWhenAMessageIsFull(t *testing.T) {
	pub := &counting{}
	const linger = 400 * time.Millisecond
	e := events.NewEmitter(pub, "events", "test", time.Second).SetLinger(linger)
	const posted = 600 // two full messages (256 each) and a partial one
	start := time.Now()
	for i := range posted {
		e.Post(event(i), nil)
	}
	e.Wait()
	took := time.Since(start)
	messages, n := pub.counts()
	if n != posted || messages != 3 {
		t.Fatalf("%d events in %d messages, want %d in 3", n, messages, posted)
	}
	// A linger before the partial message, and perhaps before the first
	// (the flusher may start before the rest is posted): never three.
	if took >= 5*linger/2 {
		t.Errorf("took %s: it lingered before a full message (linger %s)", took.Round(time.Millisecond), linger)
	}
}

// A linger ends as soon as flushAt callers wait, rather than when it runs
// out: the forwarder's delivered messages hold prefetch slots meanwhile.
// And it ends when a whole message's worth waits, whatever flushAt.
func TestEmitter_LingerEndsAtFlushAtOrAFullMessage(t *testing.T) {
	const linger = time.Hour // never what ends it here
	published := func(e *events.Emitter, pub *counting, posts, size int) {
		t.Helper()
		done := make(chan struct{})
		var mu sync.Mutex
		told := 0
		for i := range posts {
			evs := make([]events.Event, size)
			for j := range evs {
				evs[j] = event(i)
			}
			e.PostAll(evs, func(err error) {
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				if told++; told == posts {
					close(done)
				}
				mu.Unlock()
			})
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d posts of %d events still unconfirmed after 10 s: the linger was not cut short", posts, size)
		}
		if messages, evs := pub.counts(); messages != 1 || evs != posts*size {
			t.Errorf("%d messages of %d events in all, want 1 of %d", messages, evs, posts*size)
		}
	}
	pub := &counting{}
	published(events.NewEmitter(pub, "events", "test", time.Second).SetLinger(linger).SetFlushAt(3), pub, 3, 2)
	pub = &counting{}
	published(events.NewEmitter(pub, "events", "test", time.Second).SetLinger(linger), pub, 2, 128)
}
