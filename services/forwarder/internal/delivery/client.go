package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request is one delivery attempt of one message.
type Request struct {
	ID      string // becomes the Idempotency-Key: the backend dedupes on it
	Attempt int    // becomes X-Delivery-Attempt
	Body    []byte // sent as received by the ingress, byte for byte
}

// Result is what one attempt produced.
type Result struct {
	Status     int           // HTTP status; 0 when no response arrived
	Err        error         // transport error, or the non-2xx answer's summary
	RetryAfter time.Duration // the backend's Retry-After, 0 if none
	Duration   time.Duration
}

// Client delivers to one endpoint. It is safe for concurrent use.
type Client struct {
	endpoint string
	http     *http.Client
}

// maxErrorBody is how much of a failed answer's body is kept for the dead letter.
const maxErrorBody = 1024

// NewClient returns a Client for endpoint keeping up to conns idle connections
// (one per worker, so a busy worker never dials).
func NewClient(endpoint string, conns int) *Client {
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &Client{endpoint: endpoint, http: &http.Client{Transport: transport}}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Deliver POSTs r.Body and reports the outcome. ctx bounds the whole exchange
// (DELIVERY_TIMEOUT). It never returns a Go error: every failure is a Result.
func (c *Client) Deliver(ctx context.Context, r Request) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(r.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", r.ID)
	req.Header.Set("X-Delivery-Attempt", strconv.Itoa(r.Attempt))
	req.Header.Set("User-Agent", "relay-forwarder/1")

	resp, err := c.http.Do(req)
	if err != nil {
		return Result{Err: err, Duration: time.Since(start)}
	}
	defer resp.Body.Close()
	res := Result{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), start)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		res.Err = &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	}
	// Drain a little so the connection can be reused; a huge answer is not worth it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res.Duration = time.Since(start)
	return res
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Body string // the first KiB of the answer
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("backend answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("backend answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
