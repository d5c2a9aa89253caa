package index_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/services/ingress/internal/index"
)

// Apply reuses its arrays and arena from one batch to the next, and lets
// them go after a batch far larger than usual (a rebuild from the stream).
// Whatever the batches' sizes, every registration keeps its own events,
// status and place among the waiting.
func TestApply_LargeThenSmallBatchesKeepEveryRegistration(t *testing.T) {
	x, err := index.Open(filepath.Join(t.TempDir(), "index.db"), index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()
	id := func(i int) string { return fmt.Sprintf("0193a6c4-%08d-7b21-9d3e-2f4c5b6a7d8e", i) }
	acceptedAt := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	var off int64
	batch := func(evs []events.Event, perMessage int) []index.Record {
		var recs []index.Record
		for len(evs) > 0 {
			n := min(perMessage, len(evs))
			off++
			recs = append(recs, index.Record{Offset: off, Body: events.Message(evs[:n]).Body})
			evs = evs[n:]
		}
		return recs
	}
	apply := func(recs []index.Record) {
		t.Helper()
		if skipped, err := x.Apply(recs); err != nil || skipped != 0 {
			t.Fatalf("Apply: skipped %d, %v", skipped, err)
		}
	}
	accepted := func(from, to int) (evs []events.Event) {
		for i := from; i < to; i++ {
			evs = append(evs, events.Event{Type: events.TypeAccepted, ID: id(i), At: acceptedAt(i), Source: "ingress", AcceptedAt: events.TimePtr(acceptedAt(i)), Client: "booking"})
		}
		return evs
	}
	delivered := func(from, to int) (evs []events.Event) {
		for i := from; i < to; i++ {
			acc, at := events.TimePtr(acceptedAt(i)), acceptedAt(i).Add(time.Second)
			evs = append(evs,
				events.Event{Type: events.TypeAttempt, ID: id(i), At: at, Source: "forwarder", AcceptedAt: acc, Attempt: 1, DurationMS: events.Ms(3 * time.Millisecond), Status: 200, Outcome: "delivered"},
				events.Event{Type: events.TypeDelivered, ID: id(i), At: at, Source: "forwarder", AcceptedAt: acc, Attempt: 1})
		}
		return evs
	}

	const large = 25_000 // events, more than Apply keeps arrays for
	apply(batch(accepted(0, large), 250))
	apply(batch(append(delivered(0, 300), accepted(large, large+50)...), 20))
	apply(batch(delivered(300, 310), 20))

	check := func(i int, status string, nevents int) {
		t.Helper()
		r, ok, err := x.Registration(id(i))
		if err != nil || !ok {
			t.Fatalf("%s: found %v, %v", id(i), ok, err)
		}
		if r.ID != id(i) || r.Status != status || len(r.History) != nevents || r.Client != "booking" ||
			r.AcceptedAt == nil || !r.AcceptedAt.Equal(acceptedAt(i)) {
			t.Fatalf("%s: %s, %d events, client %q, accepted %v; want %s, %d events, booking, %s",
				id(i), r.Status, len(r.History), r.Client, r.AcceptedAt, status, nevents, acceptedAt(i))
		}
	}
	for _, i := range []int{0, 1, 299, 300, 309} {
		check(i, events.StatusDelivered, 3)
	}
	for _, i := range []int{310, large - 1, large, large + 49} {
		check(i, events.StatusAccepted, 1)
	}
	if _, ok, err := x.Registration(id(large + 50)); ok || err != nil {
		t.Fatalf("%s was never accepted: found %v, %v", id(large+50), ok, err)
	}
	oldest, err := x.Oldest()
	if err != nil {
		t.Fatal(err)
	}
	if got := oldest["q"]; !got.Equal(acceptedAt(310)) || len(oldest) != 1 {
		t.Fatalf("oldest waiting: %v; want q since %s (the first not delivered)", oldest, acceptedAt(310))
	}
}
