package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/httpapi"
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
