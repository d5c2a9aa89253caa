package connlimit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/services/ingress/internal/connlimit"
)

// deadline bounds every wait: a missing event fails the test instead of
// hanging it.
const deadline = 10 * time.Second

// observer checks the Listener's invariants at every report.
type observer struct {
	t   *testing.T
	max int

	mu                 sync.Mutex
	open, idle         int
	refused, reclaimed int
}

func (o *observer) ConnectionsOpen(open, idle int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if open < 0 || idle < 0 || idle > open || (o.max > 0 && open > o.max) {
		o.t.Errorf("ConnectionsOpen(%d, %d) with a limit of %d", open, idle, o.max)
	}
	o.open, o.idle = open, idle
}

func (o *observer) ConnectionRefused() {
	o.mu.Lock()
	o.refused++
	o.mu.Unlock()
}

func (o *observer) ConnectionReclaimed() {
	o.mu.Lock()
	o.reclaimed++
	o.mu.Unlock()
}

func (o *observer) counts() (open, idle, refused, reclaimed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.open, o.idle, o.refused, o.reclaimed
}

// server is an http.Server on a Listener, on a loopback port.
type server struct {
	l    *connlimit.Listener
	obs  *observer
	addr string
	// idle receives a connection (the server's side) each time the server
	// marks it idle.
	idle chan net.Conn
	// entered receives once per request that reaches the handler.
	entered chan string
	// release ends every blocked handler when closed.
	release chan struct{}
	logs    *bytes.Buffer
	logMu   *sync.Mutex
}

// start serves with a limit, reclaiming idle connections at once: GET /block
// blocks until release is closed or the client goes away; anything else
// answers "ok".
func start(t *testing.T, limit int) *server {
	t.Helper()
	return startWith(t, limit, 0)
}

func startWith(t *testing.T, limit int, reclaimAfter time.Duration) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{obs: &observer{t: t, max: limit}, addr: ln.Addr().String(), idle: make(chan net.Conn, 1024),
		entered: make(chan string, 1024), release: make(chan struct{}), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	log := slog.New(slog.NewTextHandler(lockedWriter{s.logMu, s.logs}, nil))
	s.l = connlimit.New(ln, connlimit.Options{Max: limit, ReclaimAfter: reclaimAfter, RetryAfter: 7 * time.Second, Observer: s.obs, Log: log})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.entered <- r.RemoteAddr
			if r.URL.Path == "/block" {
				select {
				case <-s.release:
				case <-r.Context().Done():
				}
			}
			_, _ = io.WriteString(w, "ok")
		}),
		ConnState: func(c net.Conn, state http.ConnState) {
			s.l.ConnState(c, state)
			if state == http.StateIdle {
				s.idle <- c
			}
		},
		ReadHeaderTimeout: deadline,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.l) }()
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// dial connects and bounds every later read and write on the connection.
func (s *server) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(deadline))
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends GET path on c and returns the answer's status and body.
func get(t *testing.T, c net.Conn, r *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	res.Body.Close()
	return res, string(body)
}

// idleConn opens a connection, makes one request on it and waits until the
// server marks it idle; it returns the client's side and the server's.
func (s *server) idleConn(t *testing.T) (net.Conn, *bufio.Reader, net.Conn) {
	t.Helper()
	c := s.dial(t)
	r := bufio.NewReader(c)
	if res, _ := get(t, c, r, "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", res.StatusCode)
	}
	timeout := time.After(deadline)
	for {
		select {
		case sc := <-s.idle:
			if sc.RemoteAddr().String() == c.LocalAddr().String() {
				return c, r, sc
			}
		case <-timeout:
			t.Fatalf("waited %s for the server to mark the connection idle", deadline)
		}
	}
}

// busyConn opens a connection whose request the handler holds.
func (s *server) busyConn(t *testing.T) net.Conn {
	t.Helper()
	c := s.dial(t)
	if _, err := io.WriteString(c, "GET /block HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, s.entered, c.LocalAddr().String(), "the handler to get the request")
	return c
}

func (s *server) waitFor(t *testing.T, events chan string, addr, what string) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case got := <-events:
			if got == addr {
				return
			}
		case <-timeout:
			t.Fatalf("waited %s for %s", deadline, what)
		}
	}
}

// waitCounts polls the observer until open and idle are as wanted.
func (s *server) waitCounts(t *testing.T, open, idle int) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		o, i, _, _ := s.obs.counts()
		st := s.l.Stats()
		if o == open && i == idle && st.Open == open && st.Idle == idle {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("open %d idle %d (Stats %+v), want %d and %d", o, i, st, open, idle)
		}
		time.Sleep(5 * time.Millisecond) // a poll with a deadline: the server closes asynchronously
	}
}

// closedByServer reports whether the server closed c: a read returns at once
// with end-of-file or a reset instead of waiting.
func closedByServer(t *testing.T, c net.Conn, r *bufio.Reader) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	_, err := r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestListener_RefusesWith503AtOnceWhenEverySlotIsBusy(t *testing.T) {
	s := start(t, 2)
	s.busyConn(t)
	s.busyConn(t)

	c := s.dial(t)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second)) // the 503 must not wait for a slot to free up
	res, body := get(t, c, bufio.NewReader(c), "/")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	for k, want := range map[string]string{"Retry-After": "7", "Content-Type": "application/json"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !res.Close {
		t.Error("the 503 does not say Connection: close")
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, "too many connections") {
		t.Errorf("body %q: want {\"error\":\"too many connections...\"} (%v)", body, err)
	}
	if !closedByServer(t, c, bufio.NewReader(c)) {
		t.Error("the refused connection stayed open")
	}
	select {
	case addr := <-s.entered:
		t.Errorf("a refused connection's request reached the handler (%s)", addr)
	default:
	}
	if st := s.l.Stats(); st.Refused != 1 || st.Reclaimed != 0 || st.Open != 2 {
		t.Errorf("Stats %+v, want 2 open, 1 refused, 0 reclaimed", st)
	}
	if _, _, refused, _ := s.obs.counts(); refused != 1 {
		t.Errorf("observer told of %d refusals, want 1", refused)
	}
}

func TestListener_ReclaimsTheConnectionIdleLongest(t *testing.T) {
	s := start(t, 2)
	a, ar, _ := s.idleConn(t)
	b, br, _ := s.idleConn(t)

	c := s.dial(t)
	if res, body := get(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("new connection at the limit: %d %q, want 200 (an idle one reclaimed)", res.StatusCode, body)
	}
	if !closedByServer(t, a, ar) {
		t.Error("the connection idle longest was not closed")
	}
	if res, _ := get(t, b, br, "/"); res.StatusCode != http.StatusOK {
		t.Errorf("the other idle connection: %d, want 200", res.StatusCode)
	}
	if st := s.l.Stats(); st.Reclaimed != 1 || st.Refused != 0 {
		t.Errorf("Stats %+v, want 1 reclaimed, 0 refused", st)
	}
	if _, _, _, reclaimed := s.obs.counts(); reclaimed != 1 {
		t.Errorf("observer told of %d reclaims, want 1", reclaimed)
	}
}

// A connection idle for less than ReclaimAfter is in use, as far as the
// Listener can tell: a new connection is refused rather than close it, and is
// admitted once the idle one has been idle long enough.
func TestListener_ReclaimsOnlyConnectionsIdleForReclaimAfter(t *testing.T) {
	const reclaimAfter = 200 * time.Millisecond
	s := startWith(t, 1, reclaimAfter)
	before := time.Now() // before the server marks it idle
	a, ar, _ := s.idleConn(t)
	idleSince := time.Now() // after

	c := s.dial(t)
	if res, _ := get(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusServiceUnavailable && time.Since(idleSince) < reclaimAfter {
		t.Fatalf("a connection idle for less than %s was reclaimed (%d)", reclaimAfter, res.StatusCode)
	}
	end := time.Now().Add(deadline)
	for {
		c := s.dial(t)
		res, _ := get(t, c, bufio.NewReader(c), "/")
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no connection admitted %s after the other went idle", deadline)
		}
		time.Sleep(reclaimAfter / 4) // poll with a deadline: the idle connection ages
	}
	if took := time.Since(before); took < reclaimAfter {
		t.Errorf("reclaimed within %s, before %s", took, reclaimAfter)
	}
	if !closedByServer(t, a, ar) {
		t.Error("the idle connection was not closed")
	}
}

// A connection that has sent nothing is reclaimable too, or a flood of
// silent connections would hold every slot until ReadHeaderTimeout.
func TestListener_ReclaimsSilentConnections(t *testing.T) {
	s := start(t, 2)
	a := s.dial(t)
	s.dial(t)
	// The kernel queues connections in order and the Listener admits them in
	// order: a and the second are admitted before c.
	c := s.dial(t)
	if res, _ := get(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("new connection: %d, want 200", res.StatusCode)
	}
	if !closedByServer(t, a, bufio.NewReader(a)) {
		t.Error("the oldest silent connection was not closed")
	}
}

// Closed connections free their slots, each exactly once: open N, close
// them, open N again, and the limit still holds.
func TestListener_ReleasesSlotsWhenConnectionsClose(t *testing.T) {
	const n = 3
	s := start(t, n)
	for round := range 3 {
		var conns []net.Conn
		for range n {
			conns = append(conns, s.busyConn(t))
		}
		s.waitCounts(t, n, 0)
		extra := s.dial(t)
		if res, _ := get(t, extra, bufio.NewReader(extra), "/"); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("round %d: a connection over %d busy ones got %d, want 503", round, n, res.StatusCode)
		}
		for _, c := range conns {
			c.Close() // the handler sees the client go, returns, and the server closes
		}
		s.waitCounts(t, 0, 0)
	}
}

// Closing a connection more than once, as a reclaim racing with the server's
// own close does, releases its slot once: the observer would see a negative
// count otherwise.
func TestConn_CloseTwiceReleasesOnce(t *testing.T) {
	s := start(t, 2)
	_, _, sc := s.idleConn(t)
	s.idleConn(t)
	s.waitCounts(t, 2, 2)
	_ = sc.Close()
	_ = sc.Close() // and the server closes it a third time once its read fails
	s.waitCounts(t, 1, 1)

	other, peer := net.Pipe()
	defer other.Close()
	defer peer.Close()
	s.l.ConnState(other, http.StateIdle) // not the Listener's: ignored
	s.waitCounts(t, 1, 1)
}

func TestListener_CountsExactlyUnderConcurrency(t *testing.T) {
	const limit, clients, each = 8, 32, 20
	s := start(t, limit)
	var wg sync.WaitGroup
	var answered, refused atomic.Int64
	for i := range clients {
		wg.Go(func() {
			for j := range each {
				c, err := net.DialTimeout("tcp", s.addr, deadline)
				if err != nil {
					t.Error(err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(deadline))
				r := bufio.NewReader(c)
				switch (i + j) % 3 {
				case 0: // silent, then gone
				case 1: // one request, keep-alive, then gone
					if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err == nil {
						if res, err := http.ReadResponse(r, nil); err == nil {
							_, _ = io.Copy(io.Discard, res.Body)
							res.Body.Close()
							if res.StatusCode == http.StatusOK {
								answered.Add(1)
							} else {
								refused.Add(1)
							}
						}
					}
				case 2: // one request; the server closes
					if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err == nil {
						_, _ = io.Copy(io.Discard, r)
					}
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	s.waitCounts(t, 0, 0)
	// With 32 clients dialling at once against 8 slots, most connections are
	// reclaimed before their request arrives: the point is the accounting.
	t.Logf("answered %d, refused %d; Stats %+v", answered.Load(), refused.Load(), s.l.Stats())
}

func TestListener_NoLimitAdmitsEveryConnection(t *testing.T) {
	s := start(t, 0)
	for range 20 {
		s.busyConn(t)
	}
	s.waitCounts(t, 20, 0)
	if st := s.l.Stats(); st.Refused != 0 || st.Reclaimed != 0 {
		t.Errorf("Stats %+v, want nothing shed without a limit", st)
	}
}

func TestListener_LogsSheddingAtMostOncePerInterval(t *testing.T) {
	s := start(t, 1)
	s.busyConn(t)
	for range 20 {
		c := s.dial(t)
		if res, _ := get(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", res.StatusCode)
		}
	}
	s.logMu.Lock()
	logs := s.logs.String()
	s.logMu.Unlock()
	if n := strings.Count(logs, "connection limit reached"); n != 1 {
		t.Errorf("%d log lines for 20 refusals within %s, want 1:\n%s", n, connlimit.LogInterval, logs)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "limit=1") {
		t.Errorf("log line lacks its level or limit:\n%s", logs)
	}
}

// A refused connection that sends nothing gets no answer (an answer before
// the request would be dropped by HTTP clients as unsolicited) and is closed
// soon, not held.
func TestListener_ClosesSilentRefusedConnectionsUnanswered(t *testing.T) {
	s := start(t, 1)
	s.busyConn(t)
	c := s.dial(t)
	b, err := io.ReadAll(c)
	if len(b) != 0 {
		t.Errorf("a silent refused connection got %q, want nothing", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the silent refused connection was not closed within %s", deadline)
	}
	if st := s.l.Stats(); st.Refused != 1 {
		t.Errorf("Stats %+v, want 1 refused", st)
	}
}
