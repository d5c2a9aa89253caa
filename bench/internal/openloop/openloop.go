// Package openloop measures latency at a fixed rate the open-model way, and
// records what a backend receives, so each delivery can be matched to the
// request that carried it.
//
// Request i is due at start + i/rate whether or not earlier ones have been
// answered; every latency is measured from that scheduled time, so a stall
// of the system under test (or of the generator itself) shows in the
// figures instead of silently slowing the load (no coordinated omission).
// Each request knows its own scheduled time and passengerId, which vegeta's
// results do not expose together, hence this small generator rather than
// internal/load: accept-to-delivered latency needs the schedule per id.
package openloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options describe one fixed-rate run.
type Options struct {
	URL string // POST target
	// Body returns the request body carrying id as its passengerId.
	Body func(id string) []byte
	// IDs prefixes every id: "<IDs>-<i>"; unique per run.
	IDs      string
	Rate     int           // requests per second
	Duration time.Duration // sending time; Rate × Duration requests in all
	// Connections caps the client's connections, as a real client pool
	// does; a request finding them all busy waits in the client, and its
	// latency, counted from the schedule, shows the wait.
	Connections int
	// IdempotencyKey sends each id as the Idempotency-Key header too.
	IdempotencyKey bool
	Timeout        time.Duration // per request
}

// Send is one scheduled request and what came of it.
type Send struct {
	ID        string
	Scheduled time.Time // when it was due
	Done      time.Time // when the answer (or the error) came
	Status    int       // HTTP status; 0 on a transport error
	Err       string    // transport error or the body of a non-202 answer, shortened
}

// Accepted reports whether the ingress answered 202.
func (s Send) Accepted() bool { return s.Status == http.StatusAccepted }

// Result is what one run sent.
type Result struct {
	Start time.Time
	Sends []Send // in schedule order
	// MaxLag is the longest a request left after its scheduled time: the
	// generator's own lateness, included in every latency.
	MaxLag time.Duration
}

// Run sends o.Rate × o.Duration requests on schedule and waits for every
// answer. Cancelling ctx stops the schedule; requests in flight are
// cancelled too, and Run returns what was sent with ctx's error.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Rate < 1 || o.Duration <= 0 || o.Body == nil || o.Connections < 1 {
		return nil, errors.New("openloop: Rate, Duration, Body and Connections are required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	n := int(int64(o.Rate) * int64(o.Duration) / int64(time.Second))
	interval := time.Second / time.Duration(o.Rate)
	transport := &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     o.Connections,
		MaxIdleConnsPerHost: o.Connections,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	res := &Result{Sends: make([]Send, n)}
	var wg sync.WaitGroup
	res.Start = time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	i := 0
schedule:
	for ; i < n; i++ {
		due := res.Start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		}
		if lag := time.Since(due); lag > res.MaxLag {
			res.MaxLag = lag
		}
		s := &res.Sends[i]
		s.ID, s.Scheduled = o.IDs+"-"+strconv.Itoa(i), due
		wg.Go(func() { send(ctx, client, o, s) })
	}
	wg.Wait()
	res.Sends = res.Sends[:i]
	return res, ctx.Err()
}

func send(ctx context.Context, client *http.Client, o Options, s *Send) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(o.Body(s.ID)))
	if err != nil {
		s.Done, s.Err = time.Now(), err.Error()
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if o.IdempotencyKey {
		req.Header.Set("Idempotency-Key", s.ID)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.Done, s.Err = time.Now(), err.Error()
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	// The answer counts when all of it arrived: a client acts on the body.
	s.Done, s.Status = time.Now(), resp.StatusCode
	switch {
	case err != nil:
		s.Status, s.Err = 0, fmt.Sprintf("read answer: %v", err)
	case !s.Accepted():
		s.Err = string(bytes.TrimSpace(body[:min(len(body), 120)]))
	}
}
