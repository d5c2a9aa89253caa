package stub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/railco/relay/services/catering-stub/internal/config"
	"github.com/railco/relay/services/catering-stub/internal/stub"
)

// harness is a stub behind httptest with helpers that fail the test on any
// unexpected transport or decoding error.
type harness struct {
	t      *testing.T
	srv    *stub.Server
	url    string
	client *http.Client
	// fresh opens a new connection per request. Go's transport silently
	// retries a request carrying Idempotency-Key once when a *reused*
	// connection is closed under it, which would double the failed count of
	// a dropped delivery.
	fresh *http.Client
}

func defaultMode() stub.Mode { return stub.ModeFromConfig(config.Default()) }

func newHarness(t *testing.T, mode stub.Mode) *harness {
	t.Helper()
	return newHarnessWith(t, stub.Options{Mode: mode, Quiet: true})
}

func newHarnessWith(t *testing.T, opts stub.Options) *harness {
	t.Helper()
	srv, err := stub.New(opts)
	if err != nil {
		t.Fatalf("stub.New: %v", err)
	}
	ts := httptest.NewServer(srv)
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ts.Close() // also closes ts.Client()'s idle connections
	})
	return &harness{t: t, srv: srv, url: ts.URL, client: ts.Client(), fresh: &http.Client{Transport: tr}}
}

// delivery is one POST /catering as the forwarder would send it.
type delivery struct {
	key         string // Idempotency-Key; empty sends none
	attempt     int    // X-Delivery-Attempt; 0 sends none
	body        string
	contentType string
}

// post sends d with client and returns the status and body; a transport
// error is returned, not fatal, because down mode expects one.
func (h *harness) post(ctx context.Context, client *http.Client, d delivery) (int, string, error) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/catering", strings.NewReader(d.body))
	if err != nil {
		h.t.Fatalf("build request: %v", err)
	}
	if d.key != "" {
		req.Header.Set("Idempotency-Key", d.key)
	}
	if d.attempt != 0 {
		req.Header.Set("X-Delivery-Attempt", strconv.Itoa(d.attempt))
	}
	ct := d.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read response: %v", err)
	}
	return resp.StatusCode, string(b), nil
}

// deliver posts d and fails the test on a transport error.
func (h *harness) deliver(d delivery) int {
	h.t.Helper()
	status, _, err := h.post(context.Background(), h.client, d)
	if err != nil {
		h.t.Fatalf("POST /catering: %v", err)
	}
	return status
}

// do sends a request with an optional body and returns status and body.
func (h *harness) do(method, path, body string) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, r)
	if err != nil {
		h.t.Fatalf("build request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func (h *harness) received() stub.Snapshot {
	h.t.Helper()
	status, b := h.do(http.MethodGet, "/received", "")
	if status != http.StatusOK {
		h.t.Fatalf("GET /received = %d %s", status, b)
	}
	return decode[stub.Snapshot](h.t, b)
}

func (h *harness) record(key string) stub.Record {
	h.t.Helper()
	status, b := h.do(http.MethodGet, "/received?key="+key, "")
	if status != http.StatusOK {
		h.t.Fatalf("GET /received?key=%s = %d %s", key, status, b)
	}
	return decode[stub.Record](h.t, b)
}

// modeView is GET /admin/mode as a client sees it.
type modeView struct {
	Down          bool    `json:"down"`
	ForceStatus   int     `json:"forceStatus"`
	FailureRate   float64 `json:"failureRate"`
	FailureStatus int     `json:"failureStatus"`
	Latency       string  `json:"latency"`
}

func (h *harness) mode() modeView {
	h.t.Helper()
	status, b := h.do(http.MethodGet, "/admin/mode", "")
	if status != http.StatusOK {
		h.t.Fatalf("GET /admin/mode = %d %s", status, b)
	}
	return decode[modeView](h.t, b)
}

func (h *harness) setMode(body string) modeView {
	h.t.Helper()
	status, b := h.do(http.MethodPut, "/admin/mode", body)
	if status != http.StatusOK {
		h.t.Fatalf("PUT /admin/mode %s = %d %s", body, status, b)
	}
	return decode[modeView](h.t, b)
}

// syncBuffer lets the server's handlers log while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
