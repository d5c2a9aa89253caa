package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/envelope"
)

func TestRegister_RejectsBadInputWithoutPublishing(t *testing.T) {
	seed := seedBody(t)
	big := bytes.Repeat([]byte(" "), 1025-len(seed)) // 1025 bytes with the seed: one over the limit
	tests := []struct {
		name       string
		req        func(t *testing.T) *http.Request
		status     int
		errorHas   string
		wantFields []string
	}{
		{"malformed JSON", func(*testing.T) *http.Request { return request([]byte(`{"passengerId": "p",`)) },
			http.StatusBadRequest, "malformed JSON", nil},
		{"empty body", func(*testing.T) *http.Request { return request(nil) },
			http.StatusBadRequest, "malformed JSON", nil},
		{"invalid UTF-8", func(*testing.T) *http.Request { return request([]byte("{\"class\":\"\xff\"}")) },
			http.StatusBadRequest, "UTF-8", nil},
		{"validation failure", func(*testing.T) *http.Request {
			return request(bytes.Replace(seed, []byte(`"2021-07-16 16:40"`), []byte(`"2021-07-16 10:00"`), 1))
		}, http.StatusUnprocessableEntity, "invalid registration", []string{"arrival.time"}},
		{"wrong types", func(*testing.T) *http.Request { return request([]byte(`{"passengerId":42,"departure":"x"}`)) },
			http.StatusUnprocessableEntity, "invalid registration", []string{"passengerId", "departure", "class", "train", "arrival"}},
		{"top-level array", func(*testing.T) *http.Request { return request([]byte(`[]`)) },
			http.StatusUnprocessableEntity, "invalid registration", []string{"$"}},
		{"missing Content-Type", func(*testing.T) *http.Request { return request(seed, "Content-Type", "<unset>") },
			http.StatusUnsupportedMediaType, "application/json", nil},
		{"text/plain", func(*testing.T) *http.Request {
			r := request(seed)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, http.StatusUnsupportedMediaType, "application/json", nil},
		{"form", func(*testing.T) *http.Request {
			r := request(seed)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, http.StatusUnsupportedMediaType, "application/json", nil},
		{"json lookalike", func(*testing.T) *http.Request {
			r := request(seed)
			r.Header.Set("Content-Type", "application/jsonp")
			return r
		}, http.StatusUnsupportedMediaType, "application/json", nil},
		{"non-UTF-8 charset", func(*testing.T) *http.Request {
			r := request(seed)
			r.Header.Set("Content-Type", "application/json; charset=iso-8859-1")
			return r
		}, http.StatusUnsupportedMediaType, "application/json", nil},
		{"malformed parameters", func(*testing.T) *http.Request {
			r := request(seed)
			r.Header.Set("Content-Type", "application/json; ;=")
			return r
		}, http.StatusUnsupportedMediaType, "application/json", nil},
		{"too large with Content-Length", func(*testing.T) *http.Request { return request(append(bytes.Clone(seed), big...)) },
			http.StatusRequestEntityTooLarge, "larger than 1024 bytes", nil},
		{"too large declared, never read", func(t *testing.T) *http.Request {
			r := request(nil)
			r.Body = io.NopCloser(failOnRead{t})
			r.ContentLength = 1 << 30
			return r
		}, http.StatusRequestEntityTooLarge, "larger than 1024 bytes", nil},
		{"too large chunked", func(*testing.T) *http.Request {
			r := request(nil)
			r.Body = io.NopCloser(iotest.OneByteReader(bytes.NewReader(append(bytes.Clone(seed), big...))))
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			return r
		}, http.StatusRequestEntityTooLarge, "larger than 1024 bytes", nil},
		{"too large chunked, endless", func(*testing.T) *http.Request {
			r := request(nil)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(seed), endless{}))
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, "larger than 1024 bytes", nil},
		{"unreadable body", func(*testing.T) *http.Request {
			r := request(nil)
			r.Body = io.NopCloser(iotest.ErrReader(errors.New("connection reset")))
			r.ContentLength = -1
			return r
		}, http.StatusBadRequest, "could not read", nil},
		{"empty Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "") },
			http.StatusBadRequest, "Idempotency-Key must not be empty", nil},
		{"blank Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "   ") },
			http.StatusBadRequest, "Idempotency-Key must not be empty", nil},
		{"201-character Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", strings.Repeat("k", 201)) },
			http.StatusBadRequest, "at most 200", nil},
		{"control character in Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "order\x0142") },
			http.StatusBadRequest, "printable ASCII", nil},
		{"tab in Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "order\t42") },
			http.StatusBadRequest, "printable ASCII", nil},
		{"DEL in Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "order\x7f") },
			http.StatusBadRequest, "printable ASCII", nil},
		{"non-ASCII Idempotency-Key", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "clé-42") },
			http.StatusBadRequest, "printable ASCII", nil},
		{"two Idempotency-Keys", func(*testing.T) *http.Request { return request(seed, "Idempotency-Key", "a", "Idempotency-Key", "b") },
			http.StatusBadRequest, "sent once", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			srv, _ := newTestServer(t, testConfig(t), pub)
			res := serve(t, srv, tt.req(t))
			if res.status != tt.status {
				t.Errorf("status %d, want %d; body %s", res.status, tt.status, res.raw)
			}
			if msg, _ := res.body["error"].(string); !strings.Contains(msg, tt.errorHas) {
				t.Errorf("error %q does not mention %q", msg, tt.errorHas)
			}
			fields := res.fields()
			if tt.wantFields == nil && fields != nil {
				t.Errorf("fields %v, want none", fields)
			}
			for _, f := range tt.wantFields {
				if _, ok := fields[f]; !ok {
					t.Errorf("fields %v do not name %q", fields, f)
				}
			}
			if n := len(pub.published()); n != 0 {
				t.Errorf("published %d messages, want 0", n)
			}
		})
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestRegister_UnknownRoutesAreJSON(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/catering/register", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/catering/register", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/catering/registrations", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			srv, _ := newTestServer(t, testConfig(t), pub)
			res := serve(t, srv, httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{}`)))
			if res.status != tt.status {
				t.Errorf("status %d, want %d", res.status, tt.status)
			}
			if res.body["error"] != http.StatusText(tt.status) {
				t.Errorf("error %q, want %q", res.body["error"], http.StatusText(tt.status))
			}
			if tt.allow != "" && !strings.Contains(res.header.Get("Allow"), tt.allow) {
				t.Errorf("Allow %q, want it to list %s", res.header.Get("Allow"), tt.allow)
			}
			if n := len(pub.published()); n != 0 {
				t.Errorf("published %d messages, want 0", n)
			}
		})
	}
}

func TestRegister_PublishFailureIs503(t *testing.T) {
	tests := []struct {
		name    string
		pub     *fakePublisher
		outcome string // "" = not_stored
	}{
		{"unavailable", &fakePublisher{err: fmt.Errorf("%w: not connected", broker.ErrUnavailable)}, ""},
		{"blocked", &fakePublisher{err: fmt.Errorf("%w: connection blocked by a broker resource alarm", broker.ErrUnavailable)}, ""},
		{"not confirmed", &fakePublisher{err: broker.ErrNotConfirmed}, ""},
		{"nacked: the queue is full", &fakePublisher{err: broker.ErrNacked}, "queue_full"},
		{"unroutable", &fakePublisher{err: broker.ErrUnroutable}, ""},
		{"unexpected error", &fakePublisher{err: errors.New("something else")}, ""},
		{"no confirm within PUBLISH_TIMEOUT", &fakePublisher{wait: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.PublishTimeout = 50 * time.Millisecond
			srv, logs := newTestServer(t, cfg, tt.pub)
			res := serve(t, srv, request(seedBody(t)))
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %s", res.status, res.raw)
			}
			if got := res.header.Get("Retry-After"); got != "7" {
				t.Errorf("Retry-After %q, want \"7\"", got)
			}
			if msg, _ := res.body["error"].(string); !strings.Contains(msg, "not stored") {
				t.Errorf("error %q does not say the registration was not stored", msg)
			}
			if _, ok := res.body["id"]; ok {
				t.Errorf("a failed request returned an id: %s", res.raw)
			}
			if n := len(tt.pub.published()); n != 1 {
				t.Errorf("publish attempts %d, want 1", n)
			}
			outcome := "not_stored"
			if tt.outcome != "" {
				outcome = tt.outcome
				if msg, _ := res.body["error"].(string); !strings.Contains(msg, "queue is full") {
					t.Errorf("error %q does not say the queue is full", msg)
				}
			}
			lines := logs.lines(t)
			if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["err"] == nil || lines[0]["outcome"] != outcome {
				t.Errorf("log %v, want one WARN line with the error and outcome %s", lines, outcome)
			}
		})
	}
}

func TestRegister_AcceptsAndPublishesTheExactBody(t *testing.T) {
	seed := seedBody(t)
	key200 := strings.Repeat("k", 200)
	tests := []struct {
		name        string
		contentType string
		key         string // "" = no header
	}{
		{"seed, no key", "application/json", ""},
		{"charset parameter", "application/json; charset=utf-8", ""},
		{"upper case", "Application/JSON; Charset=UTF-8", ""},
		{"no space before parameter", "application/json;charset=utf-8", ""},
		{"other parameter", "application/json; profile=registration", ""},
		{"key", "application/json", "order-241241d-1"},
		{"key with inner space and symbols", "application/json", "order 42 ~!@#$%^&*()"},
		{"key of 200 characters", "application/json", key200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			srv, logs := newTestServer(t, testConfig(t), pub)
			req := request(seed, "Content-Type", "<unset>", "Content-Type", tt.contentType)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			res := serve(t, srv, req)
			if res.status != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %s", res.status, res.raw)
			}
			id, _ := res.body["id"].(string)
			if res.body["status"] != "accepted" || len(res.body) != 2 {
				t.Errorf("body %s, want {\"id\":...,\"status\":\"accepted\"}", res.raw)
			}
			if tt.key != "" {
				if id != tt.key {
					t.Errorf("id %q, want the Idempotency-Key %q", id, tt.key)
				}
			} else if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
				t.Errorf("id %q is not a UUIDv7 (%v)", id, err)
			}

			calls := pub.published()
			if len(calls) != 1 {
				t.Fatalf("published %d messages, want 1", len(calls))
			}
			p := calls[0]
			if p.exchange != "catering" || p.key != "catering.registrations" {
				t.Errorf("published to %q with key %q, want catering / catering.registrations", p.exchange, p.key)
			}
			if !bytes.Equal(p.msg.Body, seed) {
				t.Errorf("published body differs from the request body:\n got %q\nwant %q", p.msg.Body, seed)
			}
			if p.msg.MessageId != id || p.msg.ContentType != envelope.ContentType || p.msg.DeliveryMode != amqp.Persistent {
				t.Errorf("message id %q, content type %q, delivery mode %d; want %q, %q, %d",
					p.msg.MessageId, p.msg.ContentType, p.msg.DeliveryMode, id, envelope.ContentType, amqp.Persistent)
			}

			lines := logs.lines(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			if l["level"] != "INFO" || l["id"] != id || l["status"] != float64(202) || l["outcome"] != "accepted" || l["duration"] == nil {
				t.Errorf("log line %v, want INFO with id, status 202, outcome accepted and duration", l)
			}
			if strings.Contains(logs.String(), "King Cross") {
				t.Errorf("the log contains the body: %s", logs.String())
			}
		})
	}
}

func TestRegister_IDsAreUnique(t *testing.T) {
	pub := &fakePublisher{ready: true}
	srv, _ := newTestServer(t, testConfig(t), pub)
	seen := map[string]bool{}
	for range 100 {
		res := serve(t, srv, request(seedBody(t)))
		id, _ := res.body["id"].(string)
		if seen[id] {
			t.Fatalf("id %q returned twice", id)
		}
		seen[id] = true
	}
}

func TestRegister_LogsOneLinePerRequest(t *testing.T) {
	pub := &fakePublisher{ready: true}
	srv, logs := newTestServer(t, testConfig(t), pub)
	serve(t, srv, request([]byte(`{`)))
	serve(t, srv, request([]byte(`{}`), "Idempotency-Key", "k-1"))
	serve(t, srv, request(seedBody(t), "Content-Type", "<unset>"))
	lines := logs.lines(t)
	want := []struct {
		status  float64
		outcome string
		id      any
	}{
		{400, "malformed_json", nil},
		{422, "invalid", "k-1"},
		{415, "unsupported_media_type", nil},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l["level"] != "INFO" || l["status"] != w.status || l["outcome"] != w.outcome || l["id"] != w.id {
			t.Errorf("line %d: %v, want INFO status %v outcome %s id %v", i, l, w.status, w.outcome, w.id)
		}
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		pub     *fakePublisher
		drain   bool
		status  int
		want    map[string]any
		wantLog string
	}{
		{"healthz", "/healthz", &fakePublisher{}, false, 200, map[string]any{"status": "ok"}, "ok"},
		{"ready", "/readyz", &fakePublisher{ready: true}, false, 200, map[string]any{"status": "ready", "broker": "connected"}, "ready"},
		{"disconnected", "/readyz", &fakePublisher{}, false, 503, map[string]any{"status": "not ready", "broker": "disconnected"}, "not_ready"},
		{"blocked", "/readyz", &fakePublisher{blocked: true}, false, 503, map[string]any{"status": "not ready", "broker": "blocked"}, "not_ready"},
		{"shutting down", "/readyz", &fakePublisher{ready: true}, true, 503,
			map[string]any{"status": "not ready", "broker": "connected", "reason": "shutting down"}, "not_ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs := newTestServer(t, testConfig(t), tt.pub)
			if tt.drain {
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			res := serve(t, srv, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if res.status != tt.status {
				t.Errorf("status %d, want %d", res.status, tt.status)
			}
			if fmt.Sprint(res.body) != fmt.Sprint(tt.want) {
				t.Errorf("body %v, want %v", res.body, tt.want)
			}
			lines := logs.lines(t)
			if len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["outcome"] != tt.wantLog {
				t.Errorf("log %v, want one DEBUG line with outcome %s", lines, tt.wantLog)
			}
		})
	}
}
