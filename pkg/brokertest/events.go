package brokertest

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/topology"
)

// WithEvents turns the event stream on in cfg, with a small retention.
func WithEvents(cfg topology.Config) topology.Config {
	cfg.Events = true
	cfg.EventsMaxAge = time.Hour
	cfg.EventsMaxBytes = 64 << 20
	return cfg
}

// WaitEvents reads stream from its first event and returns what the events
// of id say once until holds, failing t after timeout. It waits on the
// stream's deliveries: no polling.
func WaitEvents(t testing.TB, conn *amqp.Connection, stream, id string, timeout time.Duration, until func(events.Registration) bool) events.Registration {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	if err := ch.Qos(500, 0, false /* global */); err != nil {
		t.Fatalf("qos: %v", err)
	}
	ds, err := ch.Consume(stream, "", false /* autoAck */, false /* exclusive */, false /* noLocal */, false /* noWait */, amqp.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatalf("consume %s: %v", stream, err)
	}
	var evs []events.Event
	var r events.Registration
	deadline := time.After(timeout)
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("stream %s consumer closed", stream)
			}
			_ = d.Ack(false)
			msg, err := events.ParseMessage(d.Body)
			if err != nil {
				t.Fatalf("events at %v: %v", d.Headers["x-stream-offset"], err)
			}
			found := false
			for _, e := range msg {
				if e.ID == id {
					evs, found = append(evs, e), true
				}
			}
			if !found {
				continue
			}
			r = events.Fold(evs)
			if until(r) {
				return r
			}
		case <-deadline:
			t.Fatalf("events of %s after %s: %+v", id, timeout, r)
		}
	}
}
