package openloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Recorder is a backend that answers 200 to every POST and records when each
// passengerId first arrived, read from the body, so the deliveries of any
// system (relay or a peer, whatever headers it adds) match the requests that
// carried them. It runs in the benchmark's process: at a fixed rate of a few
// thousand per second it is idle most of the time, and its clock is the one
// the schedule was read from. Safe for concurrent use.
type Recorder struct {
	srv *http.Server
	url string

	mu         sync.Mutex
	first      map[string]time.Time // passengerId → first arrival
	requests   int
	duplicates int // arrivals of a passengerId already recorded
	noID       int // bodies without a passengerId
	grew       chan struct{}
}

// StartRecorder listens on a free loopback port and serves until Close.
func StartRecorder() (*Recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	r := &Recorder{url: "http://" + ln.Addr().String() + "/catering", first: map[string]time.Time{}, grew: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// URL is where the forwarder must deliver.
func (r *Recorder) URL() string { return r.url }

// Close stops the server.
func (r *Recorder) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// Reset forgets every recording.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first = map[string]time.Time{}
	r.requests, r.duplicates, r.noID = 0, 0, 0
}

// Counts is what the recorder saw since the last Reset.
type Counts struct {
	Requests   int `json:"requests"`
	Unique     int `json:"unique"`
	Duplicates int `json:"duplicates"`
	NoID       int `json:"no_passenger_id"`
}

// Counts returns the current counts.
func (r *Recorder) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Counts{Requests: r.requests, Unique: len(r.first), Duplicates: r.duplicates, NoID: r.noID}
}

// Arrivals returns a copy of passengerId → first arrival.
func (r *Recorder) Arrivals() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.first))
	for k, v := range r.first {
		out[k] = v
	}
	return out
}

// ErrMissing is returned by Wait when some ids did not arrive in time.
var ErrMissing = errors.New("deliveries missing")

// Wait blocks until every id in ids arrived, ctx ends, or timeout passes.
func (r *Recorder) Wait(ctx context.Context, ids []string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		missing := r.missing(ids)
		if missing == 0 {
			return nil
		}
		select {
		case <-r.grew:
		case <-deadline.C:
			return fmt.Errorf("%w: %d of %d after %s", ErrMissing, missing, len(ids), timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Recorder) missing(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.first) < len(ids) {
		return len(ids) - len(r.first) // at least; a full check is not needed yet
	}
	n := 0
	for _, id := range ids {
		if _, ok := r.first[id]; !ok {
			n++
		}
	}
	return n
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	now := time.Now()
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	id, ok := PassengerID(body)
	r.mu.Lock()
	r.requests++
	switch _, seen := r.first[id]; {
	case !ok:
		r.noID++
	case seen:
		r.duplicates++
	default:
		r.first[id] = now
	}
	r.mu.Unlock()
	select { // wake a waiter; one pending wake-up is enough
	case r.grew <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// PassengerID returns the value of the first "passengerId" string in a JSON
// body, without decoding the document; ok is false when there is none. Ids
// the benchmark sends need no escaping, so an escaped quote ends the value
// early and the id then matches nothing: it is reported, not misattributed.
func PassengerID(body []byte) (id string, ok bool) {
	const key = `"passengerId"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimLeft(body[i+len(key):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return "", false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return "", false
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return "", false
	}
	return string(rest[:j]), true
}
