package events_test

import (
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func ev(typ string, redrive, attempt, sec int) events.Event {
	e := events.Event{V: 1, Type: typ, ID: "r1", At: at(sec), Redrive: redrive, Attempt: attempt}
	switch typ {
	case events.TypeAttempt:
		e.Outcome = "retry"
		e.Status = 500
		e.DurationMS = events.Ms(12 * time.Millisecond)
	case events.TypeRetryScheduled:
		e.Tier = "q.retry.1s"
		due := at(sec + 1)
		e.Due = &due
	case events.TypeDeadLettered:
		e.Reason = "max-attempts"
	}
	return e
}

func delivered(redrive, attempt, sec int) []events.Event {
	a := ev(events.TypeAttempt, redrive, attempt, sec)
	a.Outcome, a.Status = "delivered", 200
	return []events.Event{a, ev(events.TypeDelivered, redrive, attempt, sec)}
}

func TestFold_StatusAndHistory(t *testing.T) {
	accepted := ev(events.TypeAccepted, 0, 0, 0)
	accepted.Client = "railco"
	cases := []struct {
		name       string
		evs        []events.Event
		status     string
		attempts   int
		duplicates int
		reason     string
	}{
		{"accepted only", []events.Event{accepted}, events.StatusAccepted, 0, 0, ""},
		{"delivered at once", append([]events.Event{accepted}, delivered(0, 1, 1)...), events.StatusDelivered, 1, 0, ""},
		{"accepted event arrives after delivery", append(delivered(0, 1, 1), accepted), events.StatusDelivered, 1, 0, ""},
		{"retrying", []events.Event{accepted, ev(events.TypeAttempt, 0, 1, 1), ev(events.TypeRetryScheduled, 0, 1, 1)}, events.StatusRetrying, 1, 0, ""},
		{"held", []events.Event{accepted, ev(events.TypeAttempt, 0, 1, 1), ev(events.TypeRetryScheduled, 0, 1, 1), ev(events.TypeHeld, 0, 2, 3)}, events.StatusHeld, 1, 0, ""},
		{"third attempt", append([]events.Event{accepted,
			ev(events.TypeAttempt, 0, 1, 1), ev(events.TypeRetryScheduled, 0, 1, 1),
			ev(events.TypeAttempt, 0, 2, 2), ev(events.TypeRetryScheduled, 0, 2, 2)}, delivered(0, 3, 4)...), events.StatusDelivered, 3, 0, ""},
		{"dead", []events.Event{accepted, ev(events.TypeAttempt, 0, 1, 1), ev(events.TypeDeadLettered, 0, 1, 1)}, events.StatusDead, 1, 0, "max-attempts"},
		{"dead, redriven, delivered", append([]events.Event{accepted, ev(events.TypeAttempt, 0, 1, 1), ev(events.TypeDeadLettered, 0, 1, 1),
			ev(events.TypeRedriven, 1, 0, 5)}, delivered(1, 1, 6)...), events.StatusDelivered, 2, 0, ""},
		{"redriven", []events.Event{accepted, ev(events.TypeDeadLettered, 0, 1, 1), ev(events.TypeRedriven, 1, 0, 5)}, events.StatusAccepted, 0, 0, ""},
		{"purged", []events.Event{accepted, ev(events.TypeDeadLettered, 0, 1, 1), ev(events.TypePurged, 0, 1, 5)}, events.StatusPurged, 0, 0, "max-attempts"},
		{"crash before the ack: attempt made again", append(append([]events.Event{accepted}, delivered(0, 1, 1)...), delivered(0, 1, 3)...), events.StatusDelivered, 2, 1, ""},
		{"the same event stored twice", append(append([]events.Event{accepted}, delivered(0, 1, 1)...), delivered(0, 1, 1)...), events.StatusDelivered, 1, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := events.Fold(c.evs)
			if r.Status != c.status {
				t.Errorf("status %q, want %q", r.Status, c.status)
			}
			if len(r.Attempts) != c.attempts {
				t.Errorf("%d attempts, want %d: %+v", len(r.Attempts), c.attempts, r.Attempts)
			}
			dups := 0
			for _, a := range r.Attempts {
				if a.Duplicate {
					dups++
				}
			}
			if dups != c.duplicates {
				t.Errorf("%d duplicates, want %d", dups, c.duplicates)
			}
			if r.Reason != c.reason {
				t.Errorf("reason %q, want %q", r.Reason, c.reason)
			}
			if r.AcceptedAt == nil || !r.AcceptedAt.Equal(t0) {
				t.Errorf("accepted_at %v, want %v", r.AcceptedAt, t0)
			}
			if (r.Status == events.StatusDelivered) != (r.DeliveredAt != nil) {
				t.Errorf("delivered_at %v with status %s", r.DeliveredAt, r.Status)
			}
		})
	}
}

func TestMessage_RoundTrips(t *testing.T) {
	e := ev(events.TypeAttempt, 1, 2, 3)
	p := events.Message([]events.Event{e, ev(events.TypeDelivered, 1, 2, 3)})
	got, err := events.ParseMessage(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Type != e.Type || got[0].ID != e.ID || !got[0].At.Equal(e.At) || *got[0].DurationMS != 12 || got[0].Attempt != 2 || got[0].Redrive != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	if p.Type != events.MessageType || p.Headers[events.HeaderVersion] != int32(1) || p.Headers[events.HeaderCount] != int32(2) {
		t.Fatalf("properties: %+v", p)
	}
	if _, err := events.ParseMessage([]byte(`[{"v":2,"type":"x","id":"y"}]`)); err == nil {
		t.Fatal("a version 2 event parsed")
	}
}
