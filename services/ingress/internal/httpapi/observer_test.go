package httpapi_test

import (
	"fmt"
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
	clients       []string // "client status"
	authFailures  []string
	rateLimited   []string
}

func (r *recorder) ClientAnswered(client string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients = append(r.clients, fmt.Sprintf("%s %d", client, status))
}

func (r *recorder) AuthFailed(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.authFailures = append(r.authFailures, reason)
}

func (r *recorder) RateLimited(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rateLimited = append(r.rateLimited, client)
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

func TestServer_TellsTheObserver(t *testing.T) {
	cfg := testConfig(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	obs := &recorder{}
	srv := httpapi.New(cfg, &fakePublisher{ready: true}, topology.New(cfg.Topology), log, httpapi.WithObserver(obs))

	serve(t, srv, request(seedBody(t)))
	serve(t, srv, request([]byte(`{`)))
	serve(t, srv, request(seedBody(t), "Content-Type", "<unset>", "Content-Type", "text/plain"))
	serve(t, srv, httptest.NewRequest(http.MethodGet, "/readyz", nil))

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := "202 accepted, 400 malformed_json, 415 unsupported_media_type, 200 ready"
	if got := strings.Join(obs.answered, ", "); got != want {
		t.Errorf("Answered: %s\nwant       %s", got, want)
	}
	if got, want := strings.Join(obs.clients, ", "), "anonymous 202, anonymous 400, anonymous 415"; got != want {
		t.Errorf("ClientAnswered: %s\nwant             %s", got, want)
	}
	if obs.registrations != 3 || obs.confirms != 1 {
		t.Errorf("%d registrations and %d confirms observed, want 3 and 1", obs.registrations, obs.confirms)
	}
	lines := logs.lines(t)
	if last := lines[len(lines)-1]; last["path"] != "/readyz" || last["level"] != "DEBUG" {
		t.Errorf("the probe's log line %v, want it at DEBUG", last)
	}
}

// The public port serves no metrics: they are on the admin address.
func TestServer_NoMetricsOnThePublicPort(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(t), &fakePublisher{ready: true})
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if res := serve(t, srv, httptest.NewRequest(http.MethodGet, path, nil)); res.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.status)
		}
	}
}
