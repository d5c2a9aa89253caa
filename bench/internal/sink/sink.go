// Package sink is the benchmark's backend: an HTTP server that answers the
// forwarder's deliveries and records, per Idempotency-Key, when the first
// successful delivery arrived.
//
// It runs as a process of its own (Spawn), as a real backend would: served
// from inside the benchmark's process it would share that Go runtime with
// thousands of load-generator goroutines, answer late, and throttle the
// forwarder (measured: half the delivery rate). Arrival times are wall-clock
// readings of the same machine as the accept times, so accept-to-delivery
// latency needs no clock synchronisation, and lost = accepted − delivered is
// a set difference. /control/* lets the benchmark reset, wait and read.
package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is how the sink answers; the zero value answers 200 at once.
type Mode struct {
	// Latency is added before every answer (a slow backend).
	Latency time.Duration `json:"latency"`
	// FailFirst is the probability, 0..1, that a first attempt
	// (X-Delivery-Attempt: 1) is answered 500, drawn per request like a
	// flaky backend's: a retry (attempt 2 and later) always succeeds, and a
	// first attempt sent again without being counted (a breaker probe) gets a
	// fresh draw rather than the same answer forever.
	FailFirst float64 `json:"fail_first"`
}

// Sink is safe for concurrent use.
type Sink struct {
	srv *http.Server
	url string

	mu         sync.Mutex
	mode       Mode
	arrived    map[string]time.Time // first successful delivery per key
	requests   int                  // every request
	failed     int                  // answered 500 on purpose
	duplicates int                  // successful deliveries of a key already delivered
	corrupt    int                  // body does not carry its own key
	changed    chan struct{}        // closed and replaced when arrived grows past want
	want       int
}

// Start listens on 127.0.0.1 at a free port and serves until Close.
func Start() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Sink{url: "http://" + ln.Addr().String() + "/catering", arrived: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /control/reset", s.controlReset)
	mux.HandleFunc("GET /control/counts", s.controlCounts)
	mux.HandleFunc("GET /control/wait", s.controlWait)
	mux.HandleFunc("GET /control/arrivals", s.controlArrivals)
	mux.HandleFunc("/", s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is where the forwarder must deliver (CATERING_SERVICE_EP).
func (s *Sink) URL() string { return s.url }

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string {
	return strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), "/catering")
}

// Close stops the server.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Reset forgets every recording and answers in mode from now on.
func (s *Sink) Reset(mode Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = mode
	s.arrived = map[string]time.Time{}
	s.requests, s.failed, s.duplicates, s.corrupt = 0, 0, 0, 0
	s.want = 0
	s.changed = nil
}

// Counts is what the sink saw since the last Reset.
type Counts struct {
	Requests   int `json:"requests"`
	Delivered  int `json:"delivered_unique"`
	Failed     int `json:"answered_500"`
	Duplicates int `json:"duplicates"`
	Corrupt    int `json:"corrupt_bodies"`
}

// Counts returns the current counts.
func (s *Sink) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counts{Requests: s.requests, Delivered: len(s.arrived), Failed: s.failed, Duplicates: s.duplicates, Corrupt: s.corrupt}
}

// Arrivals returns a copy of key → first successful arrival.
func (s *Sink) Arrivals() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.arrived))
	for k, v := range s.arrived {
		out[k] = v
	}
	return out
}

// ErrTimeout is returned by WaitDelivered when too few deliveries arrived in time.
var ErrTimeout = errors.New("deliveries still missing")

// WaitDelivered blocks until at least n distinct keys were delivered, ctx
// ends, or timeout passes.
func (s *Sink) WaitDelivered(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.arrived) >= n {
			s.mu.Unlock()
			return nil
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		s.want = n
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("%w: %d of %d after %s", ErrTimeout, s.Counts().Delivered, n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	key := r.Header.Get("Idempotency-Key")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	mode := s.mode
	s.requests++
	fail := mode.FailFirst > 0 && r.Header.Get("X-Delivery-Attempt") == "1" && rand.Float64() < mode.FailFirst
	if fail {
		s.failed++
	}
	s.mu.Unlock()

	if mode.Latency > 0 {
		time.Sleep(mode.Latency)
		now = time.Now() // the backend took it when it answered
	}
	if fail {
		http.Error(w, "induced failure", http.StatusInternalServerError)
		return
	}

	s.mu.Lock()
	if key == "" || !bytes.Contains(body, []byte(key)) {
		s.corrupt++
	}
	if _, ok := s.arrived[key]; ok {
		s.duplicates++
	} else {
		s.arrived[key] = now
		if s.changed != nil && len(s.arrived) >= s.want {
			close(s.changed)
			s.changed = nil
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (s *Sink) controlReset(w http.ResponseWriter, r *http.Request) {
	var m Mode
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Reset(m)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sink) controlCounts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.Counts())
}

// controlWait answers 200 once n keys were delivered, 408 at the timeout.
func (s *Sink) controlWait(w http.ResponseWriter, r *http.Request) {
	n, err1 := strconv.Atoi(r.URL.Query().Get("n"))
	timeout, err2 := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err1 != nil || err2 != nil {
		http.Error(w, "want n and timeout", http.StatusBadRequest)
		return
	}
	if err := s.WaitDelivered(r.Context(), n, timeout); err != nil {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// controlArrivals answers key → first successful arrival, in Unix nanoseconds.
func (s *Sink) controlArrivals(w http.ResponseWriter, _ *http.Request) {
	arrived := s.Arrivals()
	out := make(map[string]int64, len(arrived))
	for k, v := range arrived {
		out[k] = v.UnixNano()
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
