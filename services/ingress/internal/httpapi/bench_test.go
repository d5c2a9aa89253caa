package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/apikey"
	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

// nopPublisher confirms everything at once and keeps nothing.
type nopPublisher struct{}

func (nopPublisher) Publish(_ context.Context, _, _ string, _ amqp.Publishing) error { return nil }
func (nopPublisher) Ready() bool                                                     { return true }
func (nopPublisher) Blocked() bool                                                   { return false }

// BenchmarkRegister measures the handler's own cost per accepted request:
// routing, reading, validation, id, envelope, response and the log line (at
// info, to io.Discard). The broker round trip is not included.
func BenchmarkRegister(b *testing.B) {
	cfg := testConfig(b)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httpapi.New(cfg, nopPublisher{}, topology.New(cfg.Topology), log)
	body := seedBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/catering/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkRegisterWithAPIKey is BenchmarkRegister behind an API key among
// 100 clients and a per-client rate limit that never refuses: the
// difference is what authentication and rate limiting cost a request.
func BenchmarkRegisterWithAPIKey(b *testing.B) {
	cfg := testConfig(b)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	keys, key := benchKeys(b, 100)
	lim := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 30})
	srv := httpapi.New(cfg, nopPublisher{}, topology.New(cfg.Topology), log,
		httpapi.WithAPIKeys(keys), httpapi.WithClientRateLimit(lim))
	body := seedBody(b)
	authorization := []string{"Bearer " + key}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/catering/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header["Authorization"] = authorization // as the server parses it: no allocation of ours
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// benchKeys returns a key set of n clients and the last client's key (the
// lookup compares against all of them whichever matches).
func benchKeys(b *testing.B, n int) (*apikey.Set, string) {
	b.Helper()
	var lines strings.Builder
	key := ""
	for i := range n {
		key = fmt.Sprintf("key-%04d-0123456789abcdefghijklmnopqrstuvwxyz", i)
		fmt.Fprintf(&lines, "client-%d:%s\n", i, key)
	}
	set, err := apikey.Parse([]byte(lines.String()))
	if err != nil {
		b.Fatal(err)
	}
	return set, key
}
