package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/services/ingress/internal/index"
)

func TestTrim_RemovesWhatTheStreamNoLongerHoldsAndKeepsWhatStillWaits(t *testing.T) {
	defer index.SetTrimBatch(4)() // many transactions, resuming where each stopped
	x, err := index.Open(filepath.Join(t.TempDir(), "index.db"), index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	now := time.Now()
	old, recent := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	var off int64
	apply := func(evs ...events.Event) {
		t.Helper()
		off++
		if _, err := x.Apply([]index.Record{{Offset: off, Body: events.Message(evs).Body}}); err != nil {
			t.Fatal(err)
		}
	}
	delivered := func(id string, at time.Time) {
		acc := events.TimePtr(at)
		apply(events.Event{Type: events.TypeAccepted, ID: id, At: at, AcceptedAt: acc},
			events.Event{Type: events.TypeAttempt, ID: id, At: at, AcceptedAt: acc, Attempt: 1, Status: 200, Outcome: "delivered"},
			events.Event{Type: events.TypeDelivered, ID: id, At: at, AcceptedAt: acc, Attempt: 1})
	}
	dead := func(id string, at time.Time) {
		acc := events.TimePtr(at)
		apply(events.Event{Type: events.TypeAccepted, ID: id, At: at, AcceptedAt: acc},
			events.Event{Type: events.TypeAttempt, ID: id, At: at, AcceptedAt: acc, Attempt: 1, Status: 400, Outcome: "dead_lettered"},
			events.Event{Type: events.TypeDeadLettered, ID: id, At: at, AcceptedAt: acc, Attempt: 1, Reason: "non-retryable"})
	}

	var gone []string
	for i := range 25 {
		id := fmt.Sprintf("old-%02d", i)
		delivered(id, old)
		gone = append(gone, id)
	}
	delivered("recent", recent)
	dead("old-dead", old) // still in the dead-letter queue
	dead("old-redriven", old)
	apply(events.Event{Type: events.TypeRedriven, ID: "old-redriven", At: recent, AcceptedAt: events.TimePtr(old), Redrive: 1})
	apply(events.Event{Type: events.TypeAttempt, ID: "old-redriven", At: recent, AcceptedAt: events.TimePtr(old), Redrive: 1, Attempt: 1, Status: 200, Outcome: "delivered"},
		events.Event{Type: events.TypeDelivered, ID: "old-redriven", At: recent, AcceptedAt: events.TimePtr(old), Redrive: 1, Attempt: 1})

	n, err := x.Trim(context.Background(), now.Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(gone) {
		t.Errorf("Trim removed %d, want %d", n, len(gone))
	}
	for _, id := range gone {
		if _, ok, err := x.Registration(id); ok || err != nil {
			t.Errorf("%s: still known (err %v) after its retention", id, err)
		}
	}
	for id, status := range map[string]string{"recent": events.StatusDelivered, "old-dead": events.StatusDead, "old-redriven": events.StatusDelivered} {
		r, ok, err := x.Registration(id)
		if !ok || err != nil || r.Status != status {
			t.Errorf("%s: ok=%v err=%v status %q, want kept as %q", id, ok, err, r.Status, status)
		}
	}
	oldest, err := x.Oldest()
	if err != nil {
		t.Fatal(err)
	}
	if got := oldest["q.dead"]; got.UnixNano() != old.UnixNano() {
		t.Errorf("oldest dead letter since %v, want %v: a waiting registration is kept", got, old)
	}
	if n, err := x.Trim(context.Background(), now.Add(-7*24*time.Hour)); n != 0 || err != nil {
		t.Errorf("second Trim: %d, %v; want nothing left to remove", n, err)
	}
}

func TestTrimInterval(t *testing.T) {
	for _, c := range []struct{ maxAge, want time.Duration }{
		{7 * 24 * time.Hour, time.Hour},
		{time.Hour, 7*time.Minute + 30*time.Second},
		{time.Second, time.Second},
	} {
		if got := index.TrimInterval(c.maxAge); got != c.want {
			t.Errorf("TrimInterval(%s) = %s, want %s", c.maxAge, got, c.want)
		}
	}
}
