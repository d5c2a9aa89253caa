package openloop_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/bench/internal/openloop"
)

func TestPassengerID(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		ok               bool
	}{
		{"compact", `{"passengerId":"p-1","class":"first"}`, "p-1", true},
		{"pretty", "{\n \"passengerId\" :\n  \"241241d\",\n \"class\": \"first\"}", "241241d", true},
		{"first of two", `{"passengerId":"a","x":{"passengerId":"b"}}`, "a", true},
		{"missing", `{"class":"first"}`, "", false},
		{"not a string", `{"passengerId":42}`, "", false},
		{"empty", `{"passengerId":""}`, "", false},
		{"truncated", `{"passengerId":"abc`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := openloop.PassengerID([]byte(tc.body))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("PassengerID(%q) = %q, %v; want %q, %v", tc.body, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// fakeIngress answers 202 and forwards the body to backend, except for ids
// ending in 3 (503, not forwarded), 5 (202, never forwarded: lost) and 7
// (202, forwarded twice: a duplicate).
func fakeIngress(t *testing.T, backend string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		id, _ := openloop.PassengerID(body.Bytes())
		if strings.HasSuffix(id, "3") {
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
		times := 1
		switch {
		case strings.HasSuffix(id, "5"):
			times = 0
		case strings.HasSuffix(id, "7"):
			times = 2
		}
		for range times {
			resp, err := http.Post(backend, "application/json", bytes.NewReader(body.Bytes()))
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			resp.Body.Close()
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRun_MatchesDeliveriesToTheSchedule(t *testing.T) {
	rec, err := openloop.StartRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ing := fakeIngress(t, rec.URL())

	const rate, dur, warmup = 200, 500 * time.Millisecond, 100 * time.Millisecond
	res, err := openloop.Run(context.Background(), openloop.Options{
		URL: ing.URL, IDs: "t", Rate: rate, Duration: dur, Connections: 8,
		Body: func(id string) []byte { return []byte(`{"passengerId":"` + id + `"}`) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sends) != 100 {
		t.Fatalf("sent %d, want 100", len(res.Sends))
	}
	for i, s := range res.Sends {
		if want := res.Start.Add(time.Duration(i) * (time.Second / rate)); !s.Scheduled.Equal(want) {
			t.Fatalf("send %d scheduled at %v, want %v", i, s.Scheduled, want)
		}
	}
	var accepted []string
	for _, s := range res.Sends {
		if s.Accepted() && !strings.HasSuffix(s.ID, "5") {
			accepted = append(accepted, s.ID)
		}
	}
	if err := rec.Wait(context.Background(), accepted, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	rep := openloop.Match(res, rec.Arrivals(), warmup)
	// Of 0..99: ten end in 3 (refused), ten in 5 (lost), ten in 7 (twice).
	if rep.Sent != 100 || rep.Accepted != 90 || rep.Errors != 10 || rep.Lost != 10 || rep.Unaccepted != 0 {
		t.Fatalf("report = %+v", rep)
	}
	if c := rec.Counts(); c.Duplicates != 10 || c.Unique != 80 || c.NoID != 0 {
		t.Fatalf("counts = %+v", c)
	}
	// Sends 20..99 are measured: 72 accepted (8 refused), 64 delivered.
	if rep.Accept.N != 72 || rep.Delivered.N != 64 {
		t.Fatalf("measured %d accepts and %d deliveries, want 72 and 64", rep.Accept.N, rep.Delivered.N)
	}
	if rep.Delivered.P50 < rep.Accept.P50/2 || rep.Accept.P50 <= 0 {
		t.Fatalf("implausible latencies: %+v", rep)
	}
}

func TestRun_StopsWhenCancelled(t *testing.T) {
	ing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	defer ing.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := openloop.Run(ctx, openloop.Options{
		URL: ing.URL, IDs: "c", Rate: 100, Duration: time.Minute, Connections: 4,
		Body: func(id string) []byte { return []byte(`{"passengerId":"` + id + `"}`) },
	})
	if err == nil || len(res.Sends) == 0 || len(res.Sends) > 40 {
		t.Fatalf("err %v, %d sends; want the context's error after about 20", err, len(res.Sends))
	}
}
