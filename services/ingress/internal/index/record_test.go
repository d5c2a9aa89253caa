package index

import (
	"reflect"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
)

func TestEventRecord_RoundTrips(t *testing.T) {
	at := time.Date(2026, 12, 5, 4, 23, 45, 123456789, time.UTC)
	acc := at.Add(-time.Second)
	due := at.Add(time.Minute)
	zone := time.FixedZone("CET", 3600)
	cases := map[string]events.Event{
		"accepted": {Type: events.TypeAccepted, At: at, Source: "ingress", AcceptedAt: &acc, Client: "booking"},
		"every field": {Type: events.TypeAttempt, At: at, Source: "forwarder", AcceptedAt: &acc, Client: "c", Redrive: 2, Attempt: 3,
			DurationMS: events.Ms(0), Status: 503, Error: "backend answered 503 \"busy\"", Outcome: "retry", Redelivered: true,
			Tier: "catering.registrations.retry.1s", Due: &due, Reason: "max-attempts"},
		"nothing but the type": {Type: events.TypeHeld},
		"zero time":            {Type: events.TypeDelivered, At: time.Time{}},
		"before 1970 and far ahead": {Type: events.TypeRetryScheduled, At: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC),
			Due: func() *time.Time { t := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC); return &t }()},
		"negative numbers": {Type: events.TypeAttempt, Attempt: -1, Status: -2, DurationMS: func() *int64 { d := int64(-5); return &d }()},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			e.V, e.ID = events.Version, "0193a6c4-00000042-7b21-9d3e-2f4c5b6a7d8e"
			b := appendEvent([]byte{0xff}, &e)
			got, rest, err := readEvent(append(b[1:], 0x7f), e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, e)
			}
			if len(rest) != 1 || rest[0] != 0x7f {
				t.Fatalf("rest %x, want the next record's first byte 7f", rest)
			}
			// Every cut short record is an error, never a wrong event.
			for i := range len(b) - 1 {
				if got, _, err := readEvent(b[1:1+i], e.ID); err == nil {
					t.Fatalf("record cut to %d of %d bytes read without error as %+v", i, len(b)-1, got)
				}
			}
		})
	}
	// A time in another zone comes back as the same instant, in UTC.
	e := events.Event{Type: events.TypeAccepted, At: at.In(zone)}
	got, _, err := readEvent(appendEvent(nil, &e), "id")
	if err != nil || !got.At.Equal(at) || got.At.Location() != time.UTC {
		t.Fatalf("zoned time read back as %v (%v), want %v in UTC", got.At, err, at)
	}
}
