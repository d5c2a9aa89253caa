package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
)

// With DEAD_LETTER_REDRIVE_INTERVAL set, a letter that ran out of attempts
// while the backend was down comes back by itself and is delivered; one the
// backend refused stays dead.
func TestRun_ScheduledRedriveDeliversMaxAttemptsLetters(t *testing.T) {
	env := baseEnv(brokertest.Prefix(t))
	topo := topoOf(t, env)
	conn := brokertest.Dial(t)

	var mu sync.Mutex
	var got []string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key")+" attempt "+r.Header.Get("X-Delivery-Attempt"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer be.Close()
	env["CATERING_SERVICE_EP"] = be.URL + "/catering"
	env["DEAD_LETTER_REDRIVE_INTERVAL"] = "1s"
	logs := newLogBuffer()
	startRun(t, env, logs)
	waitConsuming(t, conn, topo)

	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	for id, reason := range map[string]string{"tired-1": envelope.ReasonMaxAttempts, "refused-1": envelope.ReasonNonRetryable} {
		p := envelope.New(id, []byte(`{}`), time.Now())
		d := amqp.Delivery{MessageId: id, Headers: p.Headers, Body: p.Body, ContentType: p.ContentType, Timestamp: p.Timestamp}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pub.Publish(ctx, topo.DeadExchange, "", envelope.Dead(d, envelope.Attempt{Number: 4, At: time.Now(), Status: 503}, reason, time.Now()))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	logs.waitFor(t, "redrove 1 dead letters (max-attempts)", 10*time.Second)
	brokertest.Eventually(t, 10*time.Second, "the redriven letter delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"tired-1 attempt 1"}) {
		t.Errorf("backend got %q, want the redriven letter on a fresh attempt 1", got)
	}
	if n := brokertest.Depth(t, conn, topo.DeadQueue); n != 1 {
		t.Errorf("dead queue holds %d, want the non-retryable letter alone", n)
	}
}
