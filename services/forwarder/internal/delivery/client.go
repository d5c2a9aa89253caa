package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/railco/relay/services/forwarder/internal/signing"
)

// Request is one delivery attempt of one message.
type Request struct {
	ID      string // becomes the Idempotency-Key: the backend dedupes on it
	Attempt int    // becomes X-Delivery-Attempt
	Body    []byte // sent as received by the ingress, byte for byte
}

// Result is what one attempt produced. Kind says what kind of result it is.
type Result struct {
	Status     int           // HTTP status of the final answer; 0 when none arrived
	Err        error         // why it is not a delivery; nil for a complete 2xx
	RetryAfter time.Duration // the backend's Retry-After, 0 if none
	Location   string        // the Location of a 3xx answer (never followed)
	Duration   time.Duration
}

// Client delivers to one endpoint. It is safe for concurrent use.
type Client struct {
	endpoint string
	shown    string // endpoint without its password, for error texts; "" when it has none
	http     *http.Client
	fast     *h1 // plain http:// without a proxy: attempts without the Transport; nil otherwise
	signer   *signing.Signer
	now      func() time.Time
}

// maxErrorBody is how much of a failed answer's body is kept for the dead letter.
const maxErrorBody = 1024

// Options configure a Client.
type Options struct {
	Endpoint string // CATERING_SERVICE_EP; its user and password, if any, go out as basic authentication
	Conns    int    // idle connections kept: one per worker, so a busy worker never dials
	// TLS is the transport's TLS configuration (CATERING_CA_FILE, client
	// certificate); nil: the system's roots and no client certificate.
	TLS *tls.Config
	// Signer signs every attempt (CATERING_SIGNING_SECRET); nil sends no
	// signature headers.
	Signer *signing.Signer
	// Now is the clock of webhook-timestamp; nil is time.Now.
	Now func() time.Time
}

// NewClient returns an unsigned Client for endpoint with the default TLS
// settings, keeping up to conns idle connections.
func NewClient(endpoint string, conns int) *Client {
	return New(Options{Endpoint: endpoint, Conns: conns})
}

// New returns a Client.
//
// It never follows redirects: a 302 would turn the POST into a body-less GET
// whose 200 looks like a delivery, and a 307 would send the registration and
// its Idempotency-Key to whatever origin the Location names. A 3xx is an
// answer like any other non-2xx (see Decide in package forwarder).
func New(o Options) *Client {
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     o.TLS,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        o.Conns,
		MaxIdleConnsPerHost: o.Conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true, // also with our own TLSClientConfig
	}
	c := &Client{endpoint: o.Endpoint, signer: o.Signer, now: o.Now, http: &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if c.now == nil {
		c.now = time.Now
	}
	if u, err := url.Parse(o.Endpoint); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			c.shown = u.Redacted()
		}
	}
	c.fast = newH1(o.Endpoint, c.shown, o.Conns)
	return c
}

// Close releases idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
	if c.fast != nil {
		c.fast.close()
	}
}

// ValidID reports whether id can be sent as the Idempotency-Key header. An id
// that cannot (a control character, say: a message published straight to the
// broker can carry any id) would fail every attempt before it reached the
// backend.
func ValidID(id string) error {
	if !httpguts.ValidHeaderFieldValue(id) {
		return &UnsendableError{Reason: fmt.Sprintf("message id %q is not a valid HTTP header value", truncate(id, 64))}
	}
	return nil
}

// Deliver POSTs r.Body and reports the outcome. ctx bounds the whole exchange
// (DELIVERY_TIMEOUT). It never returns a Go error: every failure is a Result.
//
// Only a complete 2xx answer to the whole request has Err nil: the status
// line, the headers and the whole answer body arrived, and the whole request
// had been written before. A 2xx cut short, or one that arrived while our
// body was still unsent, is an *IncompleteError.
func (c *Client) Deliver(ctx context.Context, r Request) Result {
	start := time.Now()
	if err := ValidID(r.ID); err != nil {
		return Result{Err: err}
	}
	attempt := strconv.Itoa(r.Attempt)
	var timestamp, signatures string
	if c.signer != nil {
		// Every attempt is signed anew, with its own time: a backend
		// rejects stale timestamps (replays), and a retry can come hours later.
		var scratch [256]byte
		b, at := c.signer.AppendHeaders(scratch[:0], r.ID, c.now().Unix(), r.Body)
		both := string(b) // timestamp and signature in one string, sliced
		timestamp, signatures = both[:at], both[at:]
	}
	if c.fast != nil && len(r.Body) <= h1MaxBody {
		return c.fast.do(ctx, h1Headers{id: r.ID, attempt: attempt, timestamp: timestamp, signatures: signatures}, r.Body, start)
	}
	w := &writeWatch{signal: make(chan struct{}, 1)}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: w.gotConn, WroteRequest: w.wroteRequest})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(r.Body))
	if err != nil {
		return Result{Err: &UnsendableError{Reason: "build request: " + err.Error()}}
	}
	// The header values share one backing array: one allocation, not seven.
	vals := new([7]string)
	vals[0], vals[1], vals[2], vals[3] = "application/json", r.ID, attempt, "relay-forwarder/1"
	req.Header["Content-Type"] = vals[0:1:1]
	req.Header["Idempotency-Key"] = vals[1:2:2]
	req.Header["X-Delivery-Attempt"] = vals[2:3:3]
	req.Header["User-Agent"] = vals[3:4:4]
	if c.signer != nil {
		vals[4], vals[5], vals[6] = r.ID, timestamp, signatures
		req.Header["Webhook-Id"] = vals[4:5:5]
		req.Header["Webhook-Timestamp"] = vals[5:6:6]
		req.Header["Webhook-Signature"] = vals[6:7:7]
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return Result{Err: c.redact(err), Duration: time.Since(start)}
	}
	defer resp.Body.Close()
	// The transport bounds reading an answer's body by ctx, except a 101's,
	// which is the raw connection: close it at the deadline, so a backend
	// that switches protocols and goes quiet cannot hold a worker for ever.
	// (Only then: registering the hook costs every attempt an allocation.)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		defer context.AfterFunc(ctx, func() { _ = resp.Body.Close() })()
	}
	res := Result{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), start)}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		res.Location = resp.Header.Get("Location")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err = statusError(resp)
		// Drain a little so the connection can be reused; a huge answer is not worth it.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		res.Duration = time.Since(start)
		return res
	}
	// A 2xx counts only when complete: read the answer to its end (a backend
	// that dies mid-answer may not have done the work), and make sure our own
	// request went out whole (a server that answers before reading cannot have
	// seen what was not yet sent).
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		res.Err = &IncompleteError{Status: resp.StatusCode, Cause: "answer cut short", Err: err}
	} else if err := w.wait(ctx); err != nil {
		res.Err = &IncompleteError{Status: resp.StatusCode, Cause: "answered before the request was sent whole", Err: err}
	}
	res.Duration = time.Since(start)
	return res
}

// statusError reads the first KiB of a non-2xx answer's body.
func statusError(resp *http.Response) *StatusError {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		e.Location = resp.Header.Get("Location")
	}
	return e
}

// redact takes the endpoint's password out of err: a *url.Error names the
// request's URL, and its text ends up in logs and dead-letter headers.
// (net/http masks it already; this does not depend on it.)
func (c *Client) redact(err error) error {
	var ue *url.Error
	if c.shown != "" && errors.As(err, &ue) {
		ue.URL = c.shown
	}
	return err
}

// writeWatch follows the transport's writing of the request. The transport
// may write it more than once (a keep-alive connection that turned out dead
// before anything was written is retried on a new one): the last write counts.
type writeWatch struct {
	mu     sync.Mutex
	conns  int   // connections the request was handed to
	writes int   // writes finished
	err    error // the last write's error
	signal chan struct{}
}

func (w *writeWatch) gotConn(httptrace.GotConnInfo) {
	w.mu.Lock()
	w.conns++
	w.mu.Unlock()
}

func (w *writeWatch) wroteRequest(info httptrace.WroteRequestInfo) {
	w.mu.Lock()
	w.writes++
	w.err = info.Err
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// wait returns once the last write finished: nil if it wrote the whole
// request, its error otherwise, or ctx's error if it never finished.
func (w *writeWatch) wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		done, err := w.conns > 0 && w.writes >= w.conns, w.err
		w.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-w.signal:
		case <-ctx.Done():
			return fmt.Errorf("request still being written: %w", ctx.Err())
		}
	}
}

// StatusError is a complete non-2xx answer.
type StatusError struct {
	Code     int
	Body     string // the first KiB of the answer
	Location string // a 3xx's Location, not followed
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backend answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Code >= 300 && e.Code <= 399 {
		loc := e.Location
		if loc == "" {
			loc = "(no Location)"
		}
		fmt.Fprintf(&b, " redirecting to %s (redirects are not followed)", loc)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// IncompleteError is an answer that cannot count as one: cut short, or given
// before the request was sent whole.
type IncompleteError struct {
	Status int    // the answer's status
	Cause  string // what was missing
	Err    error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("backend answered %d but %s: %v", e.Status, e.Cause, e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// UnsendableError means the request could not be made at all, for reasons of
// the message itself: no attempt will ever reach the backend.
type UnsendableError struct{ Reason string }

func (e *UnsendableError) Error() string { return e.Reason }

// PanicError is a panic while making an attempt: a bug of relay's, triggered
// by this message.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("panic while delivering: %v", e.Value) }

// Kind sorts results for the delivery policy.
type Kind int

// Kinds of Result.
const (
	// Answered: a complete final answer arrived; Status says which.
	Answered Kind = iota
	// Unreachable: no answer at all: refused, unresolvable, reset or closed
	// before an answer began.
	Unreachable
	// TimedOut: no answer within DELIVERY_TIMEOUT.
	TimedOut
	// Incomplete: an answer began but does not count (IncompleteError).
	Incomplete
	// Unsendable: the message cannot be sent as a request (UnsendableError).
	Unsendable
	// Panicked: relay itself failed making the attempt (PanicError).
	Panicked
)

var kindNames = [...]string{"answered", "unreachable", "timed-out", "incomplete", "unsendable", "panicked"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Kind says what kind of result r is.
func (r Result) Kind() Kind {
	// The errors this package and the forwarder make, unwrapped: no
	// allocation on the hot path. Anything else is looked into.
	switch r.Err.(type) {
	case nil, *StatusError:
		return Answered
	case *UnsendableError:
		return Unsendable
	case *PanicError:
		return Panicked
	case *IncompleteError:
		return Incomplete
	}
	var (
		unsendable *UnsendableError
		panicked   *PanicError
		incomplete *IncompleteError
	)
	switch {
	case errors.As(r.Err, &unsendable):
		return Unsendable
	case errors.As(r.Err, &panicked):
		return Panicked
	case errors.As(r.Err, &incomplete):
		return Incomplete
	case r.Status != 0:
		return Answered
	case errors.Is(r.Err, context.DeadlineExceeded):
		return TimedOut
	}
	return Unreachable
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
