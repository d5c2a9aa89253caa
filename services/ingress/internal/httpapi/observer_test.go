package httpapi_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/httpapi"
)

// recorder is an Observer that remembers every call.
type recorder struct {
	mu            sync.Mutex
	answered      []string
	registrations int
	confirms      int
}

func (r *recorder) Answered(status int, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered = append(r.answered, fmt.Sprintf("%d %s", status, outcome))
}

func (r *recorder) Registration(took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took > 0 {
		r.registrations++
	}
}

func (r *recorder) Confirmed(took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took >= 0 {
		r.confirms++
	}
}

func TestServer_TellsTheObserverAndServesMetrics(t *testing.T) {
	cfg := testConfig(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	obs := &recorder{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "relay_test 1\n")
	})
	srv := httpapi.New(cfg, &fakePublisher{ready: true}, topology.New(cfg.Topology), log,
		httpapi.WithObserver(obs), httpapi.WithMetrics(metrics))

	serve(t, srv, request(seedBody(t)))
	serve(t, srv, request([]byte(`{`)))
	serve(t, srv, request(seedBody(t), "Content-Type", "<unset>", "Content-Type", "text/plain"))
	serve(t, srv, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "relay_test 1\n" {
		t.Errorf("GET /metrics: %d %q, want 200 and the handler's body", rec.Code, rec.Body)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := "202 accepted, 400 malformed_json, 415 unsupported_media_type, 200 ready, 200 scraped"
	if got := strings.Join(obs.answered, ", "); got != want {
		t.Errorf("Answered: %s\nwant       %s", got, want)
	}
	if obs.registrations != 3 || obs.confirms != 1 {
		t.Errorf("%d registrations and %d confirms observed, want 3 and 1", obs.registrations, obs.confirms)
	}
	lines := logs.lines(t)
	if last := lines[len(lines)-1]; last["path"] != "/metrics" || last["level"] != "DEBUG" {
		t.Errorf("the scrape's log line %v, want it at DEBUG like the probes", last)
	}
}

func TestServer_NoMetricsHandlerNoRoute(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(t), &fakePublisher{ready: true})
	if res := serve(t, srv, httptest.NewRequest(http.MethodGet, "/metrics", nil)); res.status != http.StatusNotFound {
		t.Errorf("GET /metrics without a handler: %d, want 404", res.status)
	}
}
