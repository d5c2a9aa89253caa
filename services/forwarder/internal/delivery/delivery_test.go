package delivery_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/signing"
)

func TestDeliver_SendsHeadersAndBody(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		var got *http.Request
		var body string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got, body = r, string(b)
			w.WriteHeader(http.StatusAccepted)
		}))
		defer srv.Close()
		c := newClient(delivery.Options{Endpoint: srv.URL + "/catering", Conns: 1})
		defer c.Close()

		res := c.Deliver(context.Background(), delivery.Request{ID: "k-1", Attempt: 3, Body: []byte(" {\"a\": 1}\n")})
		if res.Status != 202 || res.Err != nil {
			t.Fatalf("result %+v", res)
		}
		if got.Method != http.MethodPost || got.URL.Path != "/catering" || body != " {\"a\": 1}\n" {
			t.Errorf("%s %s body %q", got.Method, got.URL.Path, body)
		}
		for k, want := range map[string]string{"Content-Type": "application/json", "Idempotency-Key": "k-1", "X-Delivery-Attempt": "3"} {
			if v := got.Header.Get(k); v != want {
				t.Errorf("%s = %q, want %q", k, v, want)
			}
		}
	})
}

func TestDeliver_Failures(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		long := strings.Repeat("x", 5000)
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/long":
				w.WriteHeader(500)
				_, _ = io.WriteString(w, long)
			case "/later":
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(429)
			case "/date":
				w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
				w.WriteHeader(503)
			case "/slow":
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}
		}))
		defer srv.Close()
		defer close(release) // before Close, which waits for handlers
		call := func(path string, timeout time.Duration) delivery.Result {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return newClient(delivery.Options{Endpoint: srv.URL + path, Conns: 1}).Deliver(ctx, delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
		}

		res := call("/long", time.Second)
		var se *delivery.StatusError
		if !errors.As(res.Err, &se) || se.Code != 500 || len(se.Body) != 1024 {
			t.Errorf("500 with a long body: %v (body kept %d bytes, want 1024)", res.Err, len(se.Body))
		}
		if res := call("/later", time.Second); res.Status != 429 || res.RetryAfter != 7*time.Second {
			t.Errorf("429: status %d retry-after %s, want 7s", res.Status, res.RetryAfter)
		}
		if res := call("/date", time.Second); res.RetryAfter < 80*time.Second || res.RetryAfter > 91*time.Second {
			t.Errorf("Retry-After as a date: %s, want about 90s", res.RetryAfter)
		}
		if res := call("/slow", 100*time.Millisecond); res.Status != 0 || !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Errorf("timeout: status %d err %v", res.Status, res.Err)
		}

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		refused := newClient(delivery.Options{Endpoint: "http://" + addr, Conns: 1}).Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1})
		if refused.Status != 0 || refused.Err == nil {
			t.Errorf("refused: %+v", refused)
		}
	})
}

// rawServer answers every connection with handle, for answers net/http's
// server would never give. It reads nothing itself.
func rawServer(t *testing.T, handle func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String() + "/catering"
}

// readHead reads a request's line and headers, and returns its Content-Length.
func readHead(t *testing.T, r *bufio.Reader) int {
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Errorf("read request head: %v", err)
			return 0
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
			fmt.Sscan(strings.TrimSpace(v), &n)
		}
		if line == "\r\n" {
			return n
		}
	}
}

func deliver(t *testing.T, endpoint string, body []byte, timeout time.Duration) delivery.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := newClient(delivery.Options{Endpoint: endpoint, Conns: 1})
	defer c.Close()
	return c.Deliver(ctx, delivery.Request{ID: "k", Attempt: 1, Body: body})
}

// A 302 would make Go's client follow with a GET without the body, whose 200
// looked like a delivery; a 307 would re-send the body and the
// Idempotency-Key to another origin. Neither is followed.
func TestDeliver_NeverFollowsRedirects(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		var elsewhere atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			elsewhere.Add(1) // GET /landing after a 302, or the POST after a 307
		}))
		defer other.Close()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			w.Header().Set("Location", other.URL+"/landing")
			w.WriteHeader(code)
		}))
		defer srv.Close()

		for _, code := range []int{301, 302, 303, 307, 308} {
			res := deliver(t, fmt.Sprintf("%s/%d", srv.URL, code), []byte("{}"), time.Second)
			var se *delivery.StatusError
			if res.Status != code || res.Kind() != delivery.Answered || !errors.As(res.Err, &se) {
				t.Errorf("%d: status %d kind %v err %v; want the %d itself as a failed answer", code, res.Status, res.Kind(), res.Err, code)
			}
			if res.Location != other.URL+"/landing" || !strings.Contains(res.Err.Error(), other.URL+"/landing") {
				t.Errorf("%d: Location %q, error %q; want the Location recorded in both", code, res.Location, res.Err)
			}
		}
		if n := elsewhere.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests, want 0", n)
		}
	})
}

// 1xx answers: interim ones (100, 103) are skipped and the final status
// counts; a final 101 to a plain POST is not a delivery.
func TestDeliver_InformationalAnswers(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		tests := []struct {
			name, answer string
			status       int
			delivered    bool
		}{
			{"103 then 200", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, true},
			{"100 then 500", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", 500, false},
			{"101", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", 101, false},
			{"101, then silence", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", 101, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				release := make(chan struct{})
				defer close(release)
				url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
					n := readHead(t, r)
					_, _ = io.CopyN(io.Discard, r, int64(n))
					_, _ = io.WriteString(c, tt.answer)
					if strings.HasSuffix(tt.name, "silence") {
						<-release // the connection stays open, and says nothing more
					}
				})
				started := time.Now()
				res := deliver(t, url, []byte("{}"), 500*time.Millisecond)
				if took := time.Since(started); took > 3*time.Second {
					t.Errorf("Deliver took %s with a 500ms deadline", took)
				}
				delivered := res.Kind() == delivery.Answered && res.Err == nil
				if res.Status != tt.status || delivered != tt.delivered {
					t.Errorf("status %d delivered %v (err %v), want %d %v", res.Status, delivered, res.Err, tt.status, tt.delivered)
				}
			})
		}
	})
}

// A 2xx whose answer is cut short (the backend died mid-answer) is not a
// delivery: the backend may not have done the work.
func TestDeliver_AnswerCutShortIsIncomplete(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
			n := readHead(t, r)
			_, _ = io.CopyN(io.Discard, r, int64(n))
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ok\"")
		})
		res := deliver(t, url, []byte("{}"), 2*time.Second)
		var inc *delivery.IncompleteError
		if res.Kind() != delivery.Incomplete || !errors.As(res.Err, &inc) || !errors.Is(res.Err, io.ErrUnexpectedEOF) {
			t.Errorf("kind %v err %v; want incomplete (unexpected EOF)", res.Kind(), res.Err)
		}
	})
}

// A 2xx sent before the server read our request is no delivery: it cannot
// have seen what was not yet sent. The body is far larger than the socket
// buffers, so the answer surely comes first.
func TestDeliver_AnswerBeforeTheRequestWasSentIsIncomplete(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 64<<20)
	t.Run("server closes", func(t *testing.T) {
		url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
			readHead(t, r)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		})
		res := deliver(t, url, big, 10*time.Second)
		// Which the transport sees first, the answer or the failed write, is
		// a race: an incomplete 200 or no answer at all; never a delivery.
		if k := res.Kind(); res.Err == nil || (k != delivery.Incomplete && k != delivery.Unreachable) {
			t.Errorf("status %d kind %v err %v; want an incomplete 200 or no answer", res.Status, k, res.Err)
		}
	})
	t.Run("server stops reading", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		url := rawServer(t, func(c net.Conn, r *bufio.Reader) {
			readHead(t, r)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			<-release
		})
		res := deliver(t, url, big, 5*time.Second)
		var inc *delivery.IncompleteError
		if res.Kind() != delivery.Incomplete || res.Status != 200 || !errors.As(res.Err, &inc) {
			t.Errorf("status %d kind %v err %v; want an incomplete 200", res.Status, res.Kind(), res.Err)
		}
	})
}

// An id that is not a valid header value never leaves relay: the request
// cannot be made, so no attempt could ever succeed.
func TestDeliver_InvalidIDIsUnsendable(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		var got atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
		defer srv.Close()
		c := newClient(delivery.Options{Endpoint: srv.URL, Conns: 1})
		defer c.Close()
		for _, id := range []string{"a\nb", "a\x00b", "a\rb", "\x7f"} {
			res := c.Deliver(context.Background(), delivery.Request{ID: id, Attempt: 1, Body: []byte("{}")})
			if res.Kind() != delivery.Unsendable || delivery.ValidID(id) == nil {
				t.Errorf("id %q: kind %v err %v, want unsendable", id, res.Kind(), res.Err)
			}
		}
		for _, id := range []string{"reg-1", "sha256-00ff", "with space", "tab\tinside", "ünïcode"} {
			if err := delivery.ValidID(id); err != nil {
				t.Errorf("id %q: %v, want valid", id, err)
			}
		}
		if n := got.Load(); n != 0 {
			t.Errorf("backend got %d requests, want 0", n)
		}
	})
}

// BenchmarkDeliver measures one attempt, client and (in-process) server
// together: unsigned, and signed with one and with two secrets.
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	body := []byte(`{"passengerId":"241241d","class":"first"}`)
	for _, bb := range []struct {
		name      string
		secrets   string
		transport bool
	}{{"unsigned", "", false}, {"signed", testSecret, false}, {"signed-2-secrets", testSecret + " " + otherSecret, false}, {"unsigned-transport", "", true}} {
		b.Run(bb.name, func(b *testing.B) {
			signer, err := signing.New(bb.secrets)
			if err != nil {
				b.Fatal(err)
			}
			c := delivery.New(delivery.Options{Endpoint: srv.URL, Conns: 1, Signer: signer})
			if bb.transport {
				c.TransportOnly()
			}
			defer c.Close()
			b.ReportAllocs()
			for b.Loop() {
				if res := c.Deliver(context.Background(), delivery.Request{ID: "0193a7c2-7d2e-7cc0-b6a4-2b1f0d1e9f11", Attempt: 1, Body: body}); res.Err != nil {
					b.Fatal(res.Err)
				}
			}
		})
	}
}

// viaTransport says how the running subtest's clients send (eachPath).
var viaTransport bool

// eachPath runs f twice: with attempts made on the forwarder's own HTTP/1.1
// path, and through net/http's Transport (https, a proxy, a large body).
// Both must keep every promise Deliver makes.
func eachPath(t *testing.T, f func(t *testing.T)) {
	for _, transport := range []bool{false, true} {
		name := "h1"
		if transport {
			name = "transport"
		}
		t.Run(name, func(t *testing.T) {
			viaTransport = transport
			defer func() { viaTransport = false }()
			f(t)
		})
	}
}

func newClient(o delivery.Options) *delivery.Client {
	c := delivery.New(o)
	if viaTransport {
		c.TransportOnly()
	}
	return c
}
