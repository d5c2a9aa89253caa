package delivery

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// h1 makes an attempt to a plain http:// endpoint (no proxy) in the calling
// goroutine: the request written in one system call, the answer read with
// net/http's own parser (http.ReadResponse) from the same connection, which
// then goes back to a pool. net/http's Transport hands every request to a
// writing and a reading goroutine per connection and back; for a small body
// that is most of a delivery's CPU (docs/BENCHMARKS.md). What it does not
// do, the Transport still does: TLS and HTTP/2, proxies, and bodies over
// h1MaxBody, which it writes while it reads an early answer.
//
// The semantics are the Transport's, as Deliver promises them: no redirect is
// followed; interim 1xx answers are skipped; a 2xx counts only when its body
// arrived whole (the request went out whole before the answer was read); a
// keep-alive connection the backend closed while it was idle (no byte of an
// answer on a reused connection) is retried once on a new one, as the
// Transport retries a request that carries an Idempotency-Key; an idle
// connection with bytes nobody asked for, or closed, is not used at all
// (idleUsable), as the Transport's reading goroutine would have noticed.
type h1 struct {
	addr  string // host:port to dial
	head  []byte // "POST /path HTTP/1.1\r\nHost: …\r\n" and the headers every attempt shares
	url   string // the endpoint as error texts show it: without its password
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	idle  time.Duration
	mu    sync.Mutex
	pool  []*h1Conn // idle connections, the most recently used last
	limit int       // idle connections kept
}

// h1MaxBody is the largest body h1 sends. A body that fits the socket
// buffers is written whole even to a backend that answers without reading
// it; a larger one goes through the Transport, which reads while it writes.
const h1MaxBody = 16 << 10

// h1MaxInterim is how many 1xx answers are skipped before the final one
// (the Transport's limit too).
const h1MaxInterim = 5

type h1Conn struct {
	net.Conn
	raw   syscall.RawConn // for idleUsable; nil if the connection has none
	br    *bufio.Reader
	buf   []byte    // the request being written
	read  int64     // bytes read on this connection: none means no answer began
	since time.Time // idle since
}

func (c *h1Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// newH1 returns an h1 for endpoint, or nil when the Transport must make the
// attempts: https, a proxy for the endpoint, or an endpoint it cannot read.
func newH1(endpoint, shown string, conns int) *h1 {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Opaque != "" {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: relay-forwarder/1\r\nContent-Type: application/json\r\n", u.RequestURI(), u.Host)
	if u.User != nil {
		// What http.Client sends for a URL's user and password.
		pass, _ := u.User.Password()
		head = fmt.Appendf(head, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)))
	}
	if shown == "" {
		shown = endpoint
	}
	return &h1{
		addr:  net.JoinHostPort(u.Hostname(), port),
		head:  head,
		url:   shown,
		dial:  (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		idle:  90 * time.Second,
		limit: max(conns, 1),
	}
}

// h1Headers are the headers of one attempt after the shared ones.
type h1Headers struct {
	id, attempt           string
	timestamp, signatures string // "" when unsigned
}

// do makes one attempt. It returns the Result's fields that the caller does
// not fill in itself.
func (h *h1) do(ctx context.Context, hd h1Headers, body []byte, start time.Time) Result {
	for try := 0; ; try++ {
		c, reused, err := h.get(ctx, try > 0)
		if err != nil {
			return Result{Err: h.fail(ctx, err), Duration: time.Since(start)}
		}
		res, keep, stale := h.exchange(ctx, c, reused, hd, body, start)
		if stale && try == 0 {
			// Closed by the backend while idle, the others most likely
			// too (it restarted, or closes idle connections): once more
			// on a new connection, and no more on the old ones.
			_ = c.Close()
			h.close()
			continue
		}
		if keep {
			h.put(c)
		} else {
			_ = c.Close()
		}
		res.Duration = time.Since(start)
		return res
	}
}

// exchange writes the request on c and reads the answer. keep says whether
// c can serve another request; retry, that c was reused and failed before
// any byte of an answer, as one the backend closed while idle does.
func (h *h1) exchange(ctx context.Context, c *h1Conn, reused bool, hd h1Headers, body []byte, start time.Time) (res Result, keep, retry bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else if ctx.Done() != nil {
		defer context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })()
	}
	b := append(c.buf[:0], h.head...)
	b = appendHeader(b, "Idempotency-Key", hd.id)
	b = appendHeader(b, "X-Delivery-Attempt", hd.attempt)
	if hd.signatures != "" {
		b = appendHeader(b, "Webhook-Id", hd.id)
		b = appendHeader(b, "Webhook-Timestamp", hd.timestamp)
		b = appendHeader(b, "Webhook-Signature", hd.signatures)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.buf = b
	readBefore := c.read
	// Stale: the connection was reused, failed before any byte of an answer,
	// and not because time ran out (a slow backend is no closed connection).
	stale := func(err error) bool {
		return reused && c.read == readBefore && ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	if _, err := c.Write(b); err != nil {
		return Result{Err: h.fail(ctx, err)}, false, stale(err)
	}
	var resp *http.Response
	for interim := 0; ; interim++ {
		r, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return Result{Err: h.fail(ctx, err)}, false, stale(err)
		}
		if r.StatusCode >= 200 || r.StatusCode == http.StatusSwitchingProtocols || interim == h1MaxInterim {
			resp = r
			break
		}
	}
	// A 101's body is the raw connection, bounded by the deadline; it
	// never goes back to the pool.
	keep = !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && (resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0)
	res = Result{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), start)}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		res.Location = resp.Header.Get("Location")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err = statusError(resp)
		if n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil || n == 64<<10 {
			keep = false // a huge answer is not worth reading to its end
		}
		return res, keep, false
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		res.Err = &IncompleteError{Status: resp.StatusCode, Cause: "answer cut short", Err: err}
		return res, false, false
	}
	return res, keep && c.br.Buffered() == 0, false // bytes nobody asked for: a confused backend
}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// fail turns a connection's error into the Result's: the url.Error the
// Transport would give (which never shows the password), and a deadline
// that passed as context.DeadlineExceeded, as Kind expects.
func (h *h1) fail(ctx context.Context, err error) error {
	cause := ctx.Err()
	if cause == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		cause = context.DeadlineExceeded
	}
	if cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	return &url.Error{Op: "Post", URL: h.url, Err: err}
}

// get returns an idle connection, or a new one (always, with fresh).
func (h *h1) get(ctx context.Context, fresh bool) (c *h1Conn, reused bool, err error) {
	now := time.Now()
	h.mu.Lock()
	for len(h.pool) > 0 && !fresh {
		c = h.pool[len(h.pool)-1]
		h.pool = h.pool[:len(h.pool)-1]
		if now.Sub(c.since) >= h.idle {
			_ = c.Close()
			continue
		}
		h.mu.Unlock()
		if idleUsable(c.raw) {
			return c, true, nil
		}
		_ = c.Close()
		h.mu.Lock()
	}
	h.mu.Unlock()
	conn, err := h.dial(ctx, "tcp", h.addr)
	if err != nil {
		return nil, false, err
	}
	c = &h1Conn{Conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.br = bufio.NewReaderSize(c, 4<<10)
	return c, false, nil
}

// put returns c to the pool, or closes it when the pool is full.
func (h *h1) put(c *h1Conn) {
	_ = c.SetDeadline(time.Time{})
	c.since = time.Now()
	h.mu.Lock()
	if len(h.pool) < h.limit {
		h.pool = append(h.pool, c)
		c = nil
	}
	h.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// close closes the idle connections.
func (h *h1) close() {
	h.mu.Lock()
	pool := h.pool
	h.pool = nil
	h.mu.Unlock()
	for _, c := range pool {
		_ = c.Close()
	}
}
