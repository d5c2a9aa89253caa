package httpapi_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/httpapi"
)

// stack is the HTTP API on a real listener, publishing through a real
// broker.Publisher to a topology of the test's own.
type stack struct {
	url  string
	conn *amqp.Connection
	topo *topology.Topology
	pub  *broker.Publisher
}

func newStack(t *testing.T, opts ...httpapi.Option) *stack {
	t.Helper()
	conn := brokertest.Dial(t)
	tcfg := brokertest.Config(t)
	topo := brokertest.Declare(t, conn, tcfg)
	pub := broker.NewPublisher(2)
	if err := pub.Attach(conn); err != nil {
		t.Fatalf("attach publisher: %v", err)
	}
	t.Cleanup(pub.Detach) // runs before the connection closes

	cfg := testConfig(t)
	cfg.Topology = tcfg
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ts := httptest.NewServer(httpapi.New(cfg, pub, topo, log, opts...))
	t.Cleanup(ts.Close)
	return &stack{url: ts.URL, conn: conn, topo: topo, pub: pub}
}

// client makes each request on a fresh connection, so none is left idle
// (goleak would report its goroutines).
var client = &http.Client{Timeout: deadline, Transport: &http.Transport{DisableKeepAlives: true}}

// send posts body to /catering/register. A body other than a *bytes.Reader or
// *strings.Reader has no known length and goes chunked. It may run on any
// goroutine.
func send(url string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/catering/register", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return client.Do(req)
}

// post is send for the test's goroutine; it checks the answer against the
// OpenAPI document.
func post(t *testing.T, url string, body io.Reader, header ...string) response {
	t.Helper()
	res, err := send(url, body, header...)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	conform(t, res.Request, res)
	return decode(t, res)
}

func TestIntegration_SeedIsStoredByteForByte(t *testing.T) {
	s := newStack(t)
	seed := seedBody(t)
	tests := []struct {
		name string
		key  string
	}{
		{"generated id", ""},
		{"Idempotency-Key", "order-241241d-2021-07-16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.key != "" {
				header = []string{"Idempotency-Key", tt.key}
			}
			res := post(t, s.url, bytes.NewReader(seed), header...)
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d, want 202: %s", res.status, res.raw)
			}
			id, _ := res.body["id"].(string)
			if tt.key != "" && id != tt.key {
				t.Errorf("id %q, want %q", id, tt.key)
			}
			// The confirm came before the 202, so the message is there now.
			if n := brokertest.Depth(t, s.conn, s.topo.Queue); n != 1 {
				t.Fatalf("queue depth %d right after 202, want 1", n)
			}
			d := brokertest.Get(t, s.conn, s.topo.Queue, deadline)
			if !bytes.Equal(d.Body, seed) {
				t.Errorf("stored body differs:\n got %q\nwant %q", d.Body, seed)
			}
			if d.MessageId != id {
				t.Errorf("MessageId %q, want %q", d.MessageId, id)
			}
			if d.DeliveryMode != amqp.Persistent {
				t.Errorf("DeliveryMode %d, want persistent (%d)", d.DeliveryMode, amqp.Persistent)
			}
			if d.ContentType != envelope.ContentType {
				t.Errorf("ContentType %q, want %q", d.ContentType, envelope.ContentType)
			}
			if m := envelope.Read(d); m.AcceptedAt.IsZero() || time.Since(m.AcceptedAt) > time.Minute {
				t.Errorf("accepted-at %v, want about now", m.AcceptedAt)
			}
		})
	}
}

func TestIntegration_BadInputIsNeverStored(t *testing.T) {
	s := newStack(t)
	seed := seedBody(t)
	tests := []struct {
		name   string
		body   io.Reader
		header []string
		status int
	}{
		{"malformed JSON", strings.NewReader(`{"passengerId":`), nil, http.StatusBadRequest},
		{"validation failure", strings.NewReader(`{"passengerId":42}`), nil, http.StatusUnprocessableEntity},
		{"wrong Content-Type", bytes.NewReader(seed), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"too large", bytes.NewReader(append(bytes.Clone(seed), bytes.Repeat([]byte(" "), 1024)...)), nil, http.StatusRequestEntityTooLarge},
		{"too large, chunked", io.MultiReader(bytes.NewReader(seed), bytes.NewReader(bytes.Repeat([]byte(" "), 1024))), nil, http.StatusRequestEntityTooLarge},
		{"bad Idempotency-Key", bytes.NewReader(seed), []string{"Idempotency-Key", strings.Repeat("k", 201)}, http.StatusBadRequest},
		{"non-ASCII Idempotency-Key", bytes.NewReader(seed), []string{"Idempotency-Key", "clé"}, http.StatusBadRequest},
		{"tab in Idempotency-Key", bytes.NewReader(seed), []string{"Idempotency-Key", "a\tb"}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, s.url, tt.body, tt.header...)
			if res.status != tt.status {
				t.Errorf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if n := brokertest.Depth(t, s.conn, s.topo.Queue); n != 0 {
				t.Errorf("queue depth %d, want 0", n)
			}
		})
	}
}

func TestIntegration_UnroutableIs503(t *testing.T) {
	s := newStack(t)
	ch, err := s.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.QueueUnbind(s.topo.Queue, s.topo.Queue, s.topo.Exchange, nil); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	res := post(t, s.url, bytes.NewReader(seedBody(t)))
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", res.status, res.raw)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	for _, q := range s.topo.QueueNames() {
		if n := brokertest.Depth(t, s.conn, q); n != 0 {
			t.Errorf("queue %s depth %d, want 0", q, n)
		}
	}
}

func TestIntegration_DetachedPublisherIs503(t *testing.T) {
	s := newStack(t)
	s.pub.Detach()
	res := post(t, s.url, bytes.NewReader(seedBody(t)))
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") != "7" {
		t.Fatalf("status %d, Retry-After %q; want 503 and 7: %s", res.status, res.header.Get("Retry-After"), res.raw)
	}
	ready, err := client.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, ready)
	if r.status != http.StatusServiceUnavailable || r.body["broker"] != "disconnected" {
		t.Errorf("readyz %d %s, want 503 disconnected", r.status, r.raw)
	}
}

// TestIntegration_ConcurrentRequestsAreAllStored checks that confirms are
// matched to the right requests when many share the channels.
func TestIntegration_ConcurrentRequestsAreAllStored(t *testing.T) {
	s := newStack(t)
	const n = 50
	type result struct {
		res *http.Response
		err error
	}
	results := make(chan result, n)
	seed := seedBody(t)
	for range n {
		go func() {
			res, err := send(s.url, bytes.NewReader(seed))
			results <- result{res, err}
		}()
	}
	ids := map[string]bool{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("POST: %v", r.err)
			continue
		}
		res := decode(t, r.res)
		if res.status != http.StatusAccepted {
			t.Errorf("status %d, want 202: %s", res.status, res.raw)
		}
		id, _ := res.body["id"].(string)
		ids[id] = true
	}
	if depth := brokertest.Depth(t, s.conn, s.topo.Queue); depth != n || len(ids) != n {
		t.Fatalf("queue depth %d, distinct ids %d; want %d and %d", depth, len(ids), n, n)
	}
	for range n {
		d := brokertest.Get(t, s.conn, s.topo.Queue, deadline)
		if !ids[d.MessageId] {
			t.Errorf("stored message id %q was never returned to a client, or twice", d.MessageId)
		}
		delete(ids, d.MessageId)
	}
}
