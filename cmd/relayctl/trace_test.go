package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
)

// crashed is a registration whose forwarder died between its delivered
// event and its ack: attempt 1 twice.
func crashed() events.Registration {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	acc := events.TimePtr(at)
	evs := []events.Event{{V: 1, Type: events.TypeAccepted, ID: "r-1", At: at, AcceptedAt: acc, Client: "booking"}}
	for i, sec := range []int{1, 3} {
		t := at.Add(time.Duration(sec) * time.Second)
		evs = append(evs,
			events.Event{V: 1, Type: events.TypeAttempt, ID: "r-1", At: t, Attempt: 1, Status: 200, Outcome: "delivered", DurationMS: events.Ms(20 * time.Millisecond), AcceptedAt: acc, Redelivered: i == 1},
			events.Event{V: 1, Type: events.TypeDelivered, ID: "r-1", At: t, Attempt: 1, AcceptedAt: acc})
	}
	return events.Fold(evs)
}

func TestTrace_AsksTheIngressAndPrintsATimeline(t *testing.T) {
	want := crashed()
	var auth string
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/catering/registrations/r-1" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"registration not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(want)
	}))
	defer ingress.Close()
	env := map[string]string{"RELAY_INGRESS_URL": ingress.URL, "RELAY_API_KEY": "k-0123456789abcdef"}
	c := &cli{t: t, env: env}

	code, out, errOut := c.run("trace", "r-1")
	if code != 0 {
		t.Fatalf("trace: exit %d, %s", code, errOut)
	}
	for _, s := range []string{"registration r-1: DELIVERED", "from booking", "attempt 1", "HTTP 200 in 20ms → delivered", "DUPLICATE"} {
		if !strings.Contains(out, s) {
			t.Errorf("timeline lacks %q:\n%s", s, out)
		}
	}
	if auth != "Bearer k-0123456789abcdef" {
		t.Errorf("Authorization %q, want the RELAY_API_KEY", auth)
	}

	code, out, _ = c.run("trace", "r-1", "--json")
	var got events.Registration
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Status != events.StatusDelivered || len(got.Attempts) != 2 || !got.Attempts[1].Duplicate {
		t.Errorf("trace --json: exit %d, %s", code, out)
	}

	if code, _, errOut := c.run("trace", "nope"); code != 1 || !strings.Contains(errOut, "unknown registration nope") {
		t.Errorf("unknown id: exit %d, %s; want 1 and unknown registration", code, errOut)
	}
	if code, _, _ := c.run("trace"); code != 2 {
		t.Errorf("no id: exit %d, want 2", code)
	}
}
