package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/uuid"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/connlimit"
	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/openapitest"
	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

// live is the API on a real listener behind the connection limiter, wired as
// run wires it, so that the answers given before routing (431 from net/http,
// 503 from connlimit) are the real ones too.
type live struct{ addr string }

func serveLive(t *testing.T, pub httpapi.Publisher, topo *topology.Topology, maxConns int, opts ...httpapi.Option) *live {
	t.Helper()
	cfg := testConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// ReclaimAfter longer than any test: a busy connection keeps its slot.
	lim := connlimit.New(ln, connlimit.Options{Max: maxConns, ReclaimAfter: time.Hour, RetryAfter: cfg.RetryAfter})
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httpapi.New(cfg, pub, topo, log, append(opts, httpapi.WithConnState(lim.ConnState))...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lim) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &live{addr: lim.Addr().String()}
}

// call is one request, written byte for byte.
type call struct {
	name         string
	method, path string
	header       []string // name, value, ...; a name may repeat
	body         string
	chunked      bool // body is sent as it is, after Transfer-Encoding: chunked, without Content-Length
	want         int  // 0: any documented answer
}

// raw is the request as it goes on the wire.
func (c call) raw() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n", c.method, c.path)
	for i := 0; i+1 < len(c.header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", c.header[i], c.header[i+1])
	}
	if c.chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	} else if c.body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.body))
	}
	b.WriteString("\r\n")
	b.WriteString(c.body)
	return b.String()
}

// exchange makes c on a new connection to l, checks the answer against the
// document and, for a 202, the request too, and reports a status other than
// c.want (when set).
func (l *live) exchange(t *testing.T, spec *openapitest.Checker, c call) (*http.Response, []byte) {
	t.Helper()
	raw := c.raw()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("%s: the test's request does not parse: %v", c.name, err)
	}
	conn, err := net.DialTimeout("tcp", l.addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("%s: write: %v", c.name, err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s: read the answer: %v", c.name, err)
	}
	spec.Check(t, req, res)
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if c.want != 0 && res.StatusCode != c.want {
		t.Errorf("%s: %s %s → %d %s, want %d", c.name, c.method, c.path, res.StatusCode, body, c.want)
	}
	if res.StatusCode == http.StatusAccepted {
		spec.CheckRequest(t, req, []byte(c.body))
	}
	return res, body
}

// TestOpenAPI_ServerAndDocumentAgree drives the API on a real listener, with
// a real broker where it can be had and in every state that changes an
// answer, and checks every answer against the OpenAPI document (status,
// Content-Type, required headers, body schema). Then the answers seen must be
// exactly the documented ones: an answer the code gives that the document
// lacks, or one it lists that no request produces, fails the test. A new
// answer in the code needs a request here and a line in openapi.json.
func TestOpenAPI_ServerAndDocumentAgree(t *testing.T) {
	spec := openapitest.New(t)
	seed := string(seedBody(t))
	asJSON := []string{"Content-Type", "application/json"}
	bigHeader := []string{"X-Padding", strings.Repeat("a", 64<<10)}
	conn := brokertest.Dial(t)
	attached := func(t *testing.T, topo *topology.Topology) *broker.Publisher {
		t.Helper()
		pub := broker.NewPublisher(1)
		if err := pub.Attach(conn); err != nil {
			t.Fatalf("attach publisher: %v", err)
		}
		t.Cleanup(pub.Detach)
		return pub
	}
	declare := func(t *testing.T) *topology.Topology {
		t.Helper()
		return brokertest.Declare(t, conn, brokertest.Config(t))
	}
	// undeclared names a topology where nothing will be stored.
	undeclared := func(t *testing.T) *topology.Topology { return topology.New(brokertest.Config(t)) }
	// register posts the seed, as JSON unless header sets a Content-Type.
	register := func(name string, want int, header ...string) call {
		if !slices.Contains(header, "Content-Type") {
			header = append(slices.Clone(asJSON), header...)
		}
		return call{name: name, method: http.MethodPost, path: "/catering/register", header: header, body: seed, want: want}
	}

	t.Run("connected", func(t *testing.T) {
		topo := declare(t)
		l := serveLive(t, attached(t, topo), topo, 0, httpapi.WithLookup(knownLookup()))
		for _, c := range []call{
			register("seed", http.StatusAccepted),
			{name: "status of a known registration", method: http.MethodGet, path: "/catering/registrations/" + knownID, want: http.StatusOK},
			{name: "status of an unknown id", method: http.MethodGet, path: "/catering/registrations/never-seen", want: http.StatusNotFound},
			register("seed with Idempotency-Key", http.StatusAccepted, "Idempotency-Key", "order-241241d-2021-07-16"),
			register("charset", http.StatusAccepted, "Content-Type", "application/json; charset=utf-8"),
			{name: "malformed JSON", method: http.MethodPost, path: "/catering/register", header: asJSON, body: `{"passengerId": "p",`, want: http.StatusBadRequest},
			register("Idempotency-Key too long", http.StatusBadRequest, "Idempotency-Key", strings.Repeat("k", 201)),
			register("Idempotency-Key twice", http.StatusBadRequest, "Idempotency-Key", "a", "Idempotency-Key", "b"),
			{name: "bad chunking", method: http.MethodPost, path: "/catering/register", header: asJSON, body: "zz\r\n", chunked: true, want: http.StatusBadRequest},
			{name: "too large", method: http.MethodPost, path: "/catering/register", header: asJSON, body: seed + strings.Repeat(" ", 1024), want: http.StatusRequestEntityTooLarge},
			{name: "too large chunked", method: http.MethodPost, path: "/catering/register", header: asJSON,
				body: fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 2048, strings.Repeat(" ", 2048)), chunked: true, want: http.StatusRequestEntityTooLarge},
			{name: "no Content-Type", method: http.MethodPost, path: "/catering/register", body: seed, want: http.StatusUnsupportedMediaType},
			register("text/plain", http.StatusUnsupportedMediaType, "Content-Type", "text/plain"),
			{name: "invalid", method: http.MethodPost, path: "/catering/register", header: asJSON,
				body: strings.Replace(seed, "2021-07-16 16:40", "2021-07-16 10:00", 1), want: http.StatusUnprocessableEntity},
			{name: "not an object", method: http.MethodPost, path: "/catering/register", header: asJSON, body: `[]`, want: http.StatusUnprocessableEntity},
			{name: "healthz", method: http.MethodGet, path: "/healthz", want: http.StatusOK},
			{name: "readyz", method: http.MethodGet, path: "/readyz", want: http.StatusOK},
			{name: "openapi.json", method: http.MethodGet, path: "/openapi.json", want: http.StatusOK},
			{name: "unknown path", method: http.MethodGet, path: "/nope", want: http.StatusNotFound},
			{name: "a path near the API's", method: http.MethodPost, path: "/catering/registrations", header: asJSON, body: seed, want: http.StatusNotFound},
			{name: "GET register", method: http.MethodGet, path: "/catering/register", want: http.StatusMethodNotAllowed},
			{name: "POST healthz", method: http.MethodPost, path: "/healthz", want: http.StatusMethodNotAllowed},
			{name: "HEAD readyz", method: http.MethodHead, path: "/readyz", want: http.StatusMethodNotAllowed},
			{name: "DELETE openapi.json", method: http.MethodDelete, path: "/openapi.json", want: http.StatusMethodNotAllowed},
			{name: "OPTIONS register", method: http.MethodOptions, path: "/catering/register", want: http.StatusNoContent},
			{name: "OPTIONS healthz", method: http.MethodOptions, path: "/healthz", want: http.StatusNoContent},
		} {
			l.exchange(t, spec, c)
		}
		// Headers over the limit are refused before routing, whatever the
		// path.
		for _, c := range []call{
			register("", 0),
			{method: http.MethodGet, path: "/healthz"},
			{method: http.MethodGet, path: "/readyz"},
			{method: http.MethodGet, path: "/openapi.json"},
			{method: http.MethodGet, path: "/nope"},
			{method: http.MethodGet, path: "/catering/registrations/" + knownID},
		} {
			c.name, c.header, c.want = "oversized headers", append(c.header, bigHeader...), http.StatusRequestHeaderFieldsTooLarge
			l.exchange(t, spec, c)
		}
	})

	t.Run("queue full", func(t *testing.T) {
		cfg := brokertest.Config(t)
		cfg.MaxLength = 1
		topo := brokertest.Declare(t, conn, cfg)
		brokertest.ApplyLimits(t, topo)
		l := serveLive(t, attached(t, topo), topo, 0)
		// The policy takes a moment to reach the queue, and a quorum queue
		// may take one message over its length: 202s until it refuses.
		var res *http.Response
		var body []byte
		brokertest.Eventually(t, deadline, "the full queue to refuse a registration", func() bool {
			res, body = l.exchange(t, spec, register("until the queue is full", 0)) // 202, then 503
			return res.StatusCode != http.StatusAccepted
		})
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "queue is full") {
			t.Fatalf("a full queue: %d %s, want 503 saying the queue is full", res.StatusCode, body)
		}
		l.exchange(t, spec, register("queue full", http.StatusServiceUnavailable))
	})

	t.Run("disconnected", func(t *testing.T) {
		topo := undeclared(t)
		l := serveLive(t, broker.NewPublisher(1), topo, 0) // never attached
		l.exchange(t, spec, register("broker unavailable", http.StatusServiceUnavailable))
		l.exchange(t, spec, call{name: "readyz", method: http.MethodGet, path: "/readyz", want: http.StatusServiceUnavailable})
		l.exchange(t, spec, call{name: "healthz", method: http.MethodGet, path: "/healthz", want: http.StatusOK})
	})

	t.Run("blocked by a resource alarm", func(t *testing.T) {
		topo := undeclared(t)
		pub := attached(t, topo)
		pub.SetBlocked(true)
		l := serveLive(t, pub, topo, 0)
		l.exchange(t, spec, register("blocked", http.StatusServiceUnavailable))
		l.exchange(t, spec, call{name: "readyz", method: http.MethodGet, path: "/readyz", want: http.StatusServiceUnavailable})
	})

	t.Run("API keys", func(t *testing.T) {
		topo := declare(t)
		l := serveLive(t, attached(t, topo), topo, 0, httpapi.WithAPIKeys(testKeys(t)), httpapi.WithLookup(knownLookup()))
		for _, c := range []call{
			register("no key", http.StatusUnauthorized),
			{name: "status without a key", method: http.MethodGet, path: "/catering/registrations/" + knownID, want: http.StatusUnauthorized},
			{name: "status with a key", method: http.MethodGet, path: "/catering/registrations/" + knownID, header: []string{"Authorization", "Bearer " + keyBooking}, want: http.StatusOK},
			register("Basic", http.StatusUnauthorized, "Authorization", "Basic cmFpbGNvOnNlY3JldA=="),
			register("malformed", http.StatusUnauthorized, "Authorization", "Bearer"),
			register("unknown key", http.StatusUnauthorized, "Authorization", "Bearer wrong-key-0123456789abcdef"),
			register("known key", http.StatusAccepted, "Authorization", "Bearer "+keyBooking),
		} {
			l.exchange(t, spec, c)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		topo := declare(t)
		// One at once, then one every 1000s.
		lim := ratelimit.New[string](ratelimit.Options{Rate: 0.001, Burst: 1})
		l := serveLive(t, attached(t, topo), topo, 0, httpapi.WithAPIKeys(testKeys(t)), httpapi.WithClientRateLimit(lim))
		l.exchange(t, spec, register("within the limit", http.StatusAccepted, "Authorization", "Bearer "+keyBooking))
		l.exchange(t, spec, register("over the limit", http.StatusTooManyRequests, "Authorization", "Bearer "+keyBooking))
	})

	t.Run("no randomness for an id", func(t *testing.T) {
		// Set before the server starts and restored after it stopped
		// (cleanups run last first), so no request races with either.
		uuid.SetRand(iotest.ErrReader(errors.New("no entropy")))
		t.Cleanup(func() { uuid.SetRand(nil) })
		topo := undeclared(t)
		l := serveLive(t, attached(t, topo), topo, 0)
		l.exchange(t, spec, register("no id", http.StatusInternalServerError))
	})

	t.Run("connection limit", func(t *testing.T) {
		topo := undeclared(t)
		l := serveLive(t, attached(t, topo), topo, 1, httpapi.WithLookup(knownLookup()))
		// One connection in the handler, reading a body that stops halfway,
		// holds the only slot.
		busy, err := net.DialTimeout("tcp", l.addr, deadline)
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close() // before the server's cleanup: its handler ends
		_ = busy.SetDeadline(time.Now().Add(deadline))
		fmt.Fprintf(busy, "POST /catering/register HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(seed))
		if res, err := http.ReadResponse(bufio.NewReader(busy), nil); err != nil || res.StatusCode != http.StatusContinue {
			t.Fatalf("the busy connection: %v, %v; want 100 Continue", res, err)
		}
		if _, err := io.WriteString(busy, seed[:len(seed)/2]); err != nil {
			t.Fatal(err)
		}
		for _, c := range []call{
			register("", 0),
			{method: http.MethodGet, path: "/healthz"},
			{method: http.MethodGet, path: "/readyz"},
			{method: http.MethodGet, path: "/openapi.json"},
			{method: http.MethodGet, path: "/nope"},
			{method: http.MethodGet, path: "/catering/registrations/" + knownID},
		} {
			c.name, c.want = "over the connection limit", http.StatusServiceUnavailable
			if _, body := l.exchange(t, spec, c); !strings.Contains(string(body), "too many connections") {
				t.Errorf("%s %s over the connection limit: %s, want the limiter's refusal", c.method, c.path, body)
			}
		}
	})

	documented, seen := spec.Documented(), spec.Seen()
	for _, k := range documented {
		if !slices.Contains(seen, k) {
			t.Errorf("documented, but no request produced it: %s", k)
		}
	}
	for _, k := range seen {
		if !slices.Contains(documented, k) {
			t.Errorf("produced, but not documented: %s", k)
		}
	}
	if !t.Failed() {
		var lines []string
		for _, k := range seen {
			lines = append(lines, k.String())
		}
		t.Logf("%d answers, each documented and produced:\n%s", len(seen), strings.Join(lines, "\n"))
	}
}

// knownID is the one registration knownLookup knows.
const knownID = "0193a6c4-8f5e-7b21-9d3e-2f4c5b6a7d8e"

// staticLookup is an index of fixed registrations.
type staticLookup map[string]events.Registration

func (l staticLookup) Registration(id string) (events.Registration, bool, error) {
	r, ok := l[id]
	return r, ok, nil
}

// knownLookup knows knownID: accepted, failed once, delivered.
func knownLookup() staticLookup {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	acc := at
	evs := []events.Event{
		{V: 1, Type: events.TypeAccepted, ID: knownID, At: at, Source: "ingress", AcceptedAt: &acc, Client: "booking"},
		{V: 1, Type: events.TypeAttempt, ID: knownID, At: at.Add(time.Second), Attempt: 1, DurationMS: events.Ms(40 * time.Millisecond), Error: "backend answered 503", Status: 503, Outcome: "retry", AcceptedAt: &acc},
		{V: 1, Type: events.TypeRetryScheduled, ID: knownID, At: at.Add(time.Second), Attempt: 1, Tier: "catering.registrations.retry.1s", Due: events.TimePtr(at.Add(2 * time.Second)), AcceptedAt: &acc},
		{V: 1, Type: events.TypeAttempt, ID: knownID, At: at.Add(2 * time.Second), Attempt: 2, DurationMS: events.Ms(30 * time.Millisecond), Status: 200, Outcome: "delivered", AcceptedAt: &acc},
		{V: 1, Type: events.TypeDelivered, ID: knownID, At: at.Add(2 * time.Second), Attempt: 2, AcceptedAt: &acc},
	}
	return staticLookup{knownID: events.Fold(evs)}
}
