package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/metrics/metricstest"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/metrics"
)

// rawConn is a client connection spoken to byte by byte, so that the test
// decides when it is busy, idle or gone.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, in *ingress) *rawConn {
	t.Helper()
	return dialRawAddr(t, in.addr)
}

func dialRawAddr(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(deadline))
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a request and reads its answer; the connection stays open
// unless the server closes it.
func (c *rawConn) roundTrip(t *testing.T, request string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatalf("write request: %v", err)
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	res.Body.Close()
	return res, body
}

// closedByServer waits, at most deadline, for the server to close c.
func (c *rawConn) closedByServer() bool {
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func registerRequest(body []byte) string {
	return fmt.Sprintf("POST /catering/register HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

const healthzRequest = "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"

// busyConn starts a registration and stops halfway through its body: once
// "100 Continue" arrives the handler is running, so the connection is busy
// (not idle) until the test closes it, and nothing is published.
func busyConn(t *testing.T, in *ingress, seed []byte) (*rawConn, error) {
	t.Helper()
	c := dialRaw(t, in)
	fmt.Fprintf(c, "POST /catering/register HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(seed))
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	switch res.StatusCode {
	case http.StatusContinue:
	case http.StatusServiceUnavailable:
		return nil, errRefused
	default:
		return nil, fmt.Errorf("status %d, want 100 Continue", res.StatusCode)
	}
	if _, err := c.Write(seed[:len(seed)/2]); err != nil {
		return nil, err
	}
	return c, nil
}

// admitBusy opens a busy connection, retrying while the ingress refuses it:
// connections closed just before (waitReady's, the previous round's) release
// their slots once the server has noticed, asynchronously. It adds the
// refusals it met to *refused.
func admitBusy(t *testing.T, in *ingress, seed []byte, refused *int) *rawConn {
	t.Helper()
	var c *rawConn
	brokertest.Eventually(t, deadline, "a busy connection admitted", func() bool {
		var err error
		c, err = busyConn(t, in, seed)
		if errors.Is(err, errRefused) {
			*refused++
		}
		return err == nil
	})
	return c
}

var errRefused = errors.New("refused: 503")

// scrapeMetrics reads the ingress's metrics from the admin port, which the
// connection limit does not cover, waiting (polling, bounded) until the
// values satisfy until (nil: any).
func scrapeMetrics(t *testing.T, in *ingress, until func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	var got map[string]float64
	brokertest.Eventually(t, deadline, "/metrics to answer as wanted", func() bool {
		res, err := client.Get(in.adminURL + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return false
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return false
		}
		fams := metricstest.Families(t, string(b))
		got = map[string]float64{}
		got["open"], _ = metricstest.Value(t, fams, metrics.ConnectionsOpen)
		got["idle"], _ = metricstest.Value(t, fams, metrics.ConnectionsIdle)
		got["refused"], _ = metricstest.Value(t, fams, metrics.ConnectionsShed, "action", "refused")
		got["reclaimed"], _ = metricstest.Value(t, fams, metrics.ConnectionsShed, "action", "reclaimed")
		return until == nil || until(got)
	})
	return got
}

// Over INGRESS_MAX_CONNECTIONS, with every connection busy, a new connection
// is answered 503 at once, never queued, and its registration is not stored.
func TestRun_OverTheConnectionLimitAnswers503AtOnce(t *testing.T) {
	env, tcfg := baseEnv(t)
	env["INGRESS_MAX_CONNECTIONS"] = "2"
	env["RETRY_AFTER"] = "9s"
	in := start(t, env)
	in.waitReady(t)
	seed := seedBody(t)
	var busy []*rawConn
	refusedBefore := 0 // waitReady's connections may not be released yet
	for range 2 {
		busy = append(busy, admitBusy(t, in, seed, &refusedBefore))
	}

	c := dialRaw(t, in)
	// The busy connections hold their slots far longer than this: an answer
	// within it was not waiting for one.
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	res, body := c.roundTrip(t, registerRequest(seed))
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the limit: %d %s, want 503", res.StatusCode, body)
	}
	if got := res.Header.Get("Retry-After"); got != "9" {
		t.Errorf("Retry-After %q, want 9", got)
	}
	if !res.Close {
		t.Error("the 503 does not say Connection: close")
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e["error"], "too many connections") {
		t.Errorf("body %s: want {\"error\":\"too many connections…\"} (%v)", body, err)
	}
	if !c.closedByServer() {
		t.Error("the refused connection stayed open")
	}

	for _, b := range busy {
		b.Close() // half a body: the handler fails to read it and stores nothing
	}
	// Counted exactly: the one above, and those the polls before it met.
	got := scrapeMetrics(t, in, nil)
	if want := refusedBefore + 1; got["refused"] != float64(want) || got["reclaimed"] != 0 {
		t.Errorf("shed refused %v reclaimed %v, want %d and 0", got["refused"], got["reclaimed"], want)
	}
	queue := topology.New(tcfg).Queue
	if n := brokertest.Depth(t, brokertest.Dial(t), queue); n != 0 {
		t.Errorf("queue %s holds %d messages, want 0: a refused or unfinished registration was stored", queue, n)
	}
}

// With the limit filled by idle keep-alive connections, a new client's
// registration is still accepted: the connection idle longest makes room,
// once it has been idle for reclaimIdleAfter.
func TestRun_IdleConnectionsDoNotStarveNewClients(t *testing.T) {
	env, tcfg := baseEnv(t)
	env["INGRESS_MAX_CONNECTIONS"] = "2"
	in := start(t, env)

	// A keep-alive connection to the admin port, which the limit does not
	// cover, asks until the ingress is ready and then until it has marked
	// the others idle.
	poller := dialRawAddr(t, strings.TrimPrefix(in.adminURL, "http://"))
	ask := func(path string) (int, string) {
		res, body := poller.roundTrip(t, "GET "+path+" HTTP/1.1\r\nHost: relay\r\n\r\n")
		return res.StatusCode, string(body)
	}
	brokertest.Eventually(t, deadline, "/readyz to answer 200", func() bool {
		status, _ := ask("/readyz")
		return status == http.StatusOK
	})
	idleCount := func() float64 {
		status, text := ask("/metrics")
		if status != http.StatusOK {
			t.Fatalf("GET /metrics: %d", status)
		}
		n, _ := metricstest.Value(t, metricstest.Families(t, text), metrics.ConnectionsIdle)
		return n
	}
	// One at a time, so that the first is idle longest.
	var idle []*rawConn
	for i := range 2 {
		c := dialRaw(t, in)
		if res, _ := c.roundTrip(t, healthzRequest); res.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %d", res.StatusCode)
		}
		idle = append(idle, c)
		brokertest.Eventually(t, deadline, fmt.Sprintf("the ingress to count %d idle connections", i+1), func() bool {
			return idleCount() == float64(i+1)
		})
	}

	// Until the first has been idle for reclaimIdleAfter, it might be a busy
	// client's between two requests, and a newcomer is refused; then it is
	// reclaimed. Each attempt is a new connection.
	refused := 0
	var res *http.Response
	var body []byte
	brokertest.Eventually(t, deadline, "a new client's registration answered", func() bool {
		newcomer := dialRaw(t, in)
		res, body = newcomer.roundTrip(t, registerRequest(seedBody(t)))
		if res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "too many connections") {
			refused++
			return false
		}
		return true
	})
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("a new client at the limit: %d %s, want 202", res.StatusCode, body)
	}
	if !idle[0].closedByServer() {
		t.Error("the connection idle longest was not closed")
	}
	if res, _ := idle[1].roundTrip(t, healthzRequest); res.StatusCode != http.StatusOK {
		t.Errorf("the other idle connection: %d, want 200", res.StatusCode)
	}
	status, text := ask("/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	fams := metricstest.Families(t, text)
	for _, tt := range []struct {
		labels []string
		want   float64
	}{{[]string{"action", "reclaimed"}, 1}, {[]string{"action", "refused"}, float64(refused)}} {
		if got, ok := metricstest.Value(t, fams, metrics.ConnectionsShed, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v, want %v", metrics.ConnectionsShed, tt.labels, got, tt.want)
		}
	}
	if n := brokertest.Depth(t, brokertest.Dial(t), topology.New(tcfg).Queue); n != 1 {
		t.Errorf("queue depth %d after one 202, want 1", n)
	}
}

// Slots are released when connections close, exactly once: open the limit's
// worth of busy connections, close them, and again, and the limit holds.
func TestRun_ClosedConnectionsFreeTheirSlots(t *testing.T) {
	const limit = 2
	env, _ := baseEnv(t)
	env["INGRESS_MAX_CONNECTIONS"] = fmt.Sprint(limit)
	in := start(t, env)
	in.waitReady(t)
	seed := seedBody(t)

	for round := range 3 {
		var busy []*rawConn
		var refused int
		for range limit {
			busy = append(busy, admitBusy(t, in, seed, &refused))
		}
		over := dialRaw(t, in)
		if res, body := over.roundTrip(t, healthzRequest); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("round %d: a connection over %d busy ones: %d %s, want 503", round, limit, res.StatusCode, body)
		}
		for _, c := range busy {
			c.Close()
		}
	}
	// Everything closed (the scrape's connection is on the admin port).
	scrapeMetrics(t, in, func(m map[string]float64) bool { return m["open"] == 0 && m["idle"] == 0 })
}

// Headers are bounded (MaxHeaderBytes): a 64 KiB header gets 431, one of a
// few KiB is served.
func TestRun_OversizedHeadersGet431(t *testing.T) {
	env, _ := baseEnv(t)
	in := start(t, env)
	for _, tt := range []struct {
		size int
		want int
	}{{8 << 10, http.StatusOK}, {64 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		c := dialRaw(t, in)
		res, body := c.roundTrip(t, "GET /healthz HTTP/1.1\r\nHost: relay\r\nX-Padding: "+strings.Repeat("a", tt.size)+"\r\n\r\n")
		if res.StatusCode != tt.want {
			t.Errorf("a %d-byte header: %d %s, want %d", tt.size, res.StatusCode, body, tt.want)
		}
	}
}
