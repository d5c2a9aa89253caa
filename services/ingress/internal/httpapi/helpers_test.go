package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/config"
	"github.com/railco/relay/services/ingress/internal/httpapi"
)

// seedBody is the user story's curl body with its exact whitespace.
func seedBody(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// published is one call to fakePublisher.Publish.
type published struct {
	exchange, key string
	msg           amqp.Publishing
}

// fakePublisher records publishes and answers with err; with wait set it
// instead waits for the caller's context to end, as a broker that never
// confirms would make it.
type fakePublisher struct {
	err     error
	wait    bool
	ready   bool
	blocked bool

	mu    sync.Mutex
	calls []published
}

func (f *fakePublisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	msg.Body = bytes.Clone(msg.Body)
	f.mu.Lock()
	f.calls = append(f.calls, published{exchange, key, msg})
	f.mu.Unlock()
	if f.wait {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func (f *fakePublisher) Ready() bool   { return f.ready }
func (f *fakePublisher) Blocked() bool { return f.blocked }

func (f *fakePublisher) published() []published {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]published(nil), f.calls...)
}

// testConfig is the default configuration with a small body limit.
func testConfig(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"MAX_BODY_BYTES": "1024", "RETRY_AFTER": "7s"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines decodes the JSON log lines.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newTestServer(t testing.TB, cfg config.Config, pub httpapi.Publisher) (*httpapi.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return httpapi.New(cfg, pub, topology.New(cfg.Topology), log), logs
}

// request builds a POST /catering/register with a JSON body.
func request(body []byte, header ...string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/catering/register", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "<unset>" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// serve has h answer req, and checks the answer against the OpenAPI
// document.
func serve(t testing.TB, h http.Handler, req *http.Request) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	conform(t, req, res)
	return decode(t, res)
}

func decode(t testing.TB, res *http.Response) response {
	t.Helper()
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("status %d: Content-Type %q, want JSON; body %q", res.StatusCode, ct, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("status %d: body %q is not a JSON object: %v", res.StatusCode, raw, err)
	}
	return r
}

// fields returns the "fields" member of an error response.
func (r response) fields() map[string]any {
	f, _ := r.body["fields"].(map[string]any)
	return f
}

// failOnRead is a body that must never be read.
type failOnRead struct{ t testing.TB }

func (f failOnRead) Read([]byte) (int, error) {
	f.t.Error("the body was read although Content-Length already exceeds the limit")
	return 0, io.EOF
}

// deadline bounds waits in tests that could otherwise hang.
const deadline = 10 * time.Second
