package delivery_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/services/forwarder/internal/delivery"
)

// Attempts one after another share one connection: the h1 path keeps it.
func TestH1_KeepsTheConnectionAlive(t *testing.T) {
	var conns, reqs atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		reqs.Add(1)
		w.Header().Set("Transfer-Encoding", "chunked") // answers of both framings
		if r.Header.Get("X-Delivery-Attempt") == "2" {
			w.Header().Del("Transfer-Encoding")
			w.Header().Set("Content-Length", "2")
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := delivery.NewClient(srv.URL, 4)
	defer c.Close()
	for i := range 10 {
		if res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1 + i%3, Body: []byte("{}")}); res.Err != nil || res.Status != 200 {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if n, r := conns.Load(), reqs.Load(); n != 1 || r != 10 {
		t.Errorf("%d connections for %d requests, want 1 for 10", n, r)
	}
	if n := c.Pooled(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// A keep-alive connection the backend closed while it was idle fails before
// any answer: the attempt is made once more, on a new connection, as the
// Transport does for a request with an Idempotency-Key.
func TestH1_RetriesOnceWhenAnIdleConnectionWasClosed(t *testing.T) {
	var reqs, conns atomic.Int32
	closed := make(chan struct{}, 10)
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		conns.Add(1)
		n := readHead(t, r)
		_, _ = io.CopyN(io.Discard, r, int64(n))
		reqs.Add(1)
		// No "Connection: close": the client believes it can send another.
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		_ = c.Close()
		closed <- struct{}{}
	})
	c := delivery.NewClient(url, 1)
	defer c.Close()
	for i := range 3 {
		res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
		if res.Err != nil || res.Status != 200 {
			t.Fatalf("attempt %d on a connection closed while idle: %+v", i, res)
		}
		<-closed
	}
	if r, n := reqs.Load(), conns.Load(); r != 3 || n != 3 {
		t.Errorf("backend read %d requests on %d connections, want 3 on 3", r, n)
	}
}

// A backend that restarted closed every pooled connection: the attempt is
// made on a new one, not on the next dead one.
func TestH1_AfterARestartNoPooledConnectionIsTried(t *testing.T) {
	const conns = 4
	var reqs atomic.Int32
	arrived := make(chan struct{}, conns)
	answer := make(chan struct{})
	closed := make(chan struct{}, 2*conns)
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		n := readHead(t, r)
		_, _ = io.CopyN(io.Discard, r, int64(n))
		if reqs.Add(1) <= conns {
			arrived <- struct{}{}
			<-answer // all four at once: four connections
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		_ = c.Close() // as a restart would, without telling
		closed <- struct{}{}
	})
	c := delivery.NewClient(url, conns)
	defer c.Close()
	results := make(chan delivery.Result, conns)
	for range conns {
		go func() {
			results <- c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
		}()
	}
	for range conns {
		<-arrived
	}
	close(answer)
	for range conns {
		if res := <-results; res.Err != nil {
			t.Fatalf("before the restart: %+v", res)
		}
		<-closed
	}
	if n := c.Pooled(); n != conns {
		t.Fatalf("%d pooled connections, want %d", n, conns)
	}
	if res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")}); res.Err != nil || res.Status != 200 {
		t.Errorf("after the restart: %+v", res)
	}
	if n := reqs.Load(); n != conns+1 {
		t.Errorf("backend read %d requests, want %d", n, conns+1)
	}
}

// A connection that failed after an answer began is not retried: the
// attempt failed, and says so.
func TestH1_NoRetryOnceAnAnswerBegan(t *testing.T) {
	var reqs atomic.Int32
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		for {
			if !nextRequest(t, r) {
				return
			}
			if reqs.Add(1) == 1 {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			_, _ = io.WriteString(c, "HTTP/1.1 2") // and the connection closes
			return
		}
	})
	c := delivery.NewClient(url, 1)
	defer c.Close()
	if res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")}); res.Err != nil {
		t.Fatalf("first attempt: %+v", res)
	}
	res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 2, Body: []byte("{}")})
	if res.Err == nil || res.Status != 0 || res.Kind() != delivery.Unreachable {
		t.Errorf("status %d kind %v err %v; want no answer (unreachable)", res.Status, res.Kind(), res.Err)
	}
	if n := reqs.Load(); n != 2 {
		t.Errorf("backend read %d requests, want 2 (no retry)", n)
	}
}

// Connections that cannot serve another request are closed, not pooled.
func TestH1_PoolsOnlyReusableConnections(t *testing.T) {
	tests := []struct{ name, answer string }{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"body to EOF", "HTTP/1.1 200 OK\r\n\r\nok"},
		{"bytes nobody asked for", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n"},
		{"huge error body", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
				n := readHead(t, r)
				_, _ = io.CopyN(io.Discard, r, int64(n))
				_, _ = io.WriteString(c, tt.answer)
			})
			c := delivery.NewClient(url, 1)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			res := c.Deliver(ctx, delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
			if res.Status == 0 {
				t.Fatalf("no answer: %v", res.Err)
			}
			if n := c.Pooled(); n != 0 {
				t.Errorf("%d idle connections after %q, want 0", n, tt.name)
			}
		})
	}
}

// Bytes that arrive on an idle connection were asked for by nobody: a stray
// 2xx read as the next request's answer would be a false delivery. Such a
// connection is not used again.
func TestH1_AStrayAnswerOnAnIdleConnectionIsNeverTakenForTheNext(t *testing.T) {
	var conns atomic.Int32
	stray := make(chan struct{})
	written := make(chan struct{})
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		first := conns.Add(1) == 1
		n := readHead(t, r)
		_, _ = io.CopyN(io.Discard, r, int64(n))
		if !first {
			_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		<-stray
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") // answers nothing
		close(written)
		_, _ = r.ReadByte() // until the client closes
	})
	c := delivery.NewClient(url, 1)
	defer c.Close()
	if res := c.Deliver(context.Background(), delivery.Request{ID: "a", Attempt: 1, Body: []byte("{}")}); res.Err != nil {
		t.Fatalf("first attempt: %+v", res)
	}
	close(stray)
	<-written
	// On loopback the stray answer is in the client's socket once the write
	// returned; no event tells when the kernel has queued it, so allow a moment.
	time.Sleep(50 * time.Millisecond)
	res := c.Deliver(context.Background(), delivery.Request{ID: "b", Attempt: 1, Body: []byte("{}")})
	if res.Status != 503 {
		t.Errorf("second attempt: status %d err %v; want the 503 the backend gave it, not the stray 200", res.Status, res.Err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the one with the stray answer dropped)", n)
	}
}

// A reused connection that the backend closes after reading the request,
// without a byte of an answer, is taken for one closed while idle: the
// attempt is made once more on a new connection. The backend may so see a
// request twice (it dedupes on Idempotency-Key), never none.
func TestH1_NoAnswerOnAReusedConnectionIsTriedOnceMore(t *testing.T) {
	var reqs, conns atomic.Int32
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		conns.Add(1)
		for {
			if !nextRequest(t, r) {
				return
			}
			if reqs.Add(1) == 2 {
				return // read, and closed without an answer
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	c := delivery.NewClient(url, 1)
	defer c.Close()
	for i := range 2 {
		if res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")}); res.Err != nil || res.Status != 200 {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if r, n := reqs.Load(), conns.Load(); r != 3 || n != 2 {
		t.Errorf("backend read %d requests on %d connections, want 3 on 2", r, n)
	}
}

// nextRequest reads a request of a keep-alive connection, head and body; it
// returns false when the client closed the connection instead.
func nextRequest(t *testing.T, r *bufio.Reader) bool {
	if _, err := r.Peek(1); err != nil {
		return false
	}
	n := readHead(t, r)
	_, err := io.CopyN(io.Discard, r, int64(n))
	return err == nil
}

// A backend too slow to answer on a reused connection timed the attempt
// out: that is not a connection closed while idle. The attempt is not made
// again, and the other idle connections stay.
func TestH1_ATimeoutOnAReusedConnectionIsNotRetried(t *testing.T) {
	var reqs atomic.Int32
	arrived := make(chan struct{}, 2)
	answer := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
		for nextRequest(t, r) {
			if reqs.Add(1) > 2 {
				<-release // no answer
				return
			}
			arrived <- struct{}{}
			<-answer // both at once: two connections
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	c := delivery.NewClient(url, 2)
	defer c.Close()
	results := make(chan delivery.Result, 2)
	for range 2 {
		go func() {
			results <- c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
		}()
	}
	<-arrived
	<-arrived
	close(answer)
	for range 2 {
		if res := <-results; res.Err != nil {
			t.Fatalf("first attempts: %+v", res)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := c.Deliver(ctx, delivery.Request{ID: "k", Attempt: 2, Body: []byte("{}")})
	if res.Kind() != delivery.TimedOut {
		t.Errorf("kind %v err %v, want timed-out", res.Kind(), res.Err)
	}
	if n := reqs.Load(); n != 3 {
		t.Errorf("backend read %d requests, want 3 (no retry after a timeout)", n)
	}
	if n := c.Pooled(); n != 1 {
		t.Errorf("%d idle connections after the timeout, want the other one (1)", n)
	}
}
