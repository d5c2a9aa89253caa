package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/tlsconfig"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Run dials again after the connection is lost, and stops when ctx ends.
func TestRun_ReconnectsAfterConnectionLoss(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sessions atomic.Int32
	var ups atomic.Int32
	d := broker.Dialer{URL: brokertest.URL(), Name: "test", Log: quiet(), OnConnected: func(up bool) {
		if up {
			ups.Add(1)
		}
	}}
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, func(ctx context.Context, conn *amqp.Connection) error {
			if sessions.Add(1) < 3 {
				conn.Close() // lose it
			} else {
				cancel()
			}
			return broker.Wait(ctx, conn, nil, nil)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not reconnect and stop")
	}
	if sessions.Load() != 3 || ups.Load() != 3 {
		t.Errorf("%d sessions, %d connects, want 3 of each", sessions.Load(), ups.Load())
	}
}

func TestRun_FatalErrorStops(t *testing.T) {
	boom := errors.New("topology conflict")
	d := broker.Dialer{URL: brokertest.URL(), Name: "test", Log: quiet()}
	err := d.Run(context.Background(), func(context.Context, *amqp.Connection) error { return broker.Fatal(boom) })
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want the fatal error", err)
	}
}

// With no broker at all, Run keeps trying until ctx ends and then returns nil.
func TestRun_UnreachableBrokerRetriesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var sessions atomic.Int32
	d := broker.Dialer{URL: "amqp://guest:guest@127.0.0.1:1/", Name: "test", Log: quiet()}
	err := d.Run(ctx, func(context.Context, *amqp.Connection) error { sessions.Add(1); return nil })
	if err != nil || sessions.Load() != 0 {
		t.Errorf("Run = %v with %d sessions, want nil and 0", err, sessions.Load())
	}
}

func TestRedact_HidesPassword(t *testing.T) {
	if got := broker.Redact("amqp://user:s3cret@host:5672/vh"); got != "amqp://user:xxxxx@host:5672/vh" {
		t.Errorf("Redact = %q", got)
	}
}

func TestRun_InvalidURLDoesNotLeakPassword(t *testing.T) {
	d := broker.Dialer{URL: "amqp://guest:s3cret@host:notaport/", Name: "test", Log: quiet()}
	err := d.Run(context.Background(), func(context.Context, *amqp.Connection) error { return nil })
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Run = %v, want an error without the password", err)
	}
}

func TestCheckTLS_RefusesFilesWithPlainAMQP(t *testing.T) {
	ca := tlsconfig.Files{CA: "/etc/relay/ca.pem"}
	if err := broker.CheckTLS("amqp://u:p@h:5672/", ca); err == nil || !strings.Contains(err.Error(), "amqps://") {
		t.Errorf("amqp:// with a CA file: %v, want an error asking for amqps://", err)
	}
	if err := broker.CheckTLS("amqps://u:p@h:5671/", ca); err != nil {
		t.Errorf("amqps:// with a CA file: %v", err)
	}
	if err := broker.CheckTLS("amqp://u:p@h:5672/", tlsconfig.Files{}); err != nil {
		t.Errorf("amqp:// without files: %v", err)
	}
	if err := broker.CheckTLS("amqps://u:p@h/", tlsconfig.Files{Cert: "c.pem"}); err == nil {
		t.Error("a certificate without its key: no error")
	}
}

func TestEither_ClosesWhenEitherCloses(t *testing.T) {
	for _, which := range []string{"a", "b"} {
		ctx, cancel := context.WithCancel(context.Background())
		a, b := make(chan struct{}), make(chan struct{})
		out := broker.Either(ctx, a, b)
		select {
		case <-out:
			t.Fatalf("closed before %s closed", which)
		default:
		}
		if which == "a" {
			close(a)
		} else {
			close(b)
		}
		select {
		case <-out:
		case <-time.After(5 * time.Second):
			t.Fatalf("still open 5 s after %s closed", which)
		}
		cancel()
	}
}
