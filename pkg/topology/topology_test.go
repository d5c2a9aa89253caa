package topology_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

func defaults() topology.Config {
	return topology.Config{Prefix: "catering", MaxAttempts: 4, RetryInitial: time.Second, RetryMultiplier: 5,
		RetryMax: 10 * time.Minute, DeliveryLimit: 100}
}

func TestNew_DefaultNamesAndTiers(t *testing.T) {
	topo := topology.New(defaults())
	if topo.Exchange != "catering" || topo.Queue != "catering.registrations" ||
		topo.DeadExchange != "catering.dlx" || topo.DeadQueue != "catering.registrations.dead" {
		t.Errorf("names: %+v", topo)
	}
	var got []string
	for _, tier := range topo.Tiers() {
		got = append(got, tier.Queue)
	}
	want := []string{"catering.registrations.retry.1s", "catering.registrations.retry.5s", "catering.registrations.retry.25s"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tiers %v, want %v", got, want)
	}
}

func TestSchedule_IsExponentialAndCapped(t *testing.T) {
	got := topology.Schedule(time.Second, 5, 10*time.Minute, 6)
	want := []time.Duration{time.Second, 5 * time.Second, 25 * time.Second, 125 * time.Second, 10 * time.Minute, 10 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule %v, want %v", got, want)
		}
	}
	// Capped delays share one tier.
	cfg := defaults()
	cfg.MaxAttempts = 7
	if n := len(topology.New(cfg).Tiers()); n != 5 {
		t.Errorf("%d tiers for 6 delays with two equal, want 5", n)
	}
}

func TestTierFor(t *testing.T) {
	topo := topology.New(defaults()) // 1s, 5s, 25s
	tests := []struct {
		attempt int
		atLeast time.Duration
		want    time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 5 * time.Second},
		{3, 0, 25 * time.Second},
		{9, 0, 25 * time.Second},                 // past the schedule: the last delay
		{1, 3 * time.Second, 5 * time.Second},    // Retry-After longer than the tier: next tier that covers it
		{1, 500 * time.Millisecond, time.Second}, // shorter Retry-After: the schedule wins
		{1, time.Hour, 25 * time.Second},         // beyond reason: the longest tier
		{2, 5 * time.Second, 5 * time.Second},    // exactly a tier
	}
	for _, tt := range tests {
		if got := topo.TierFor(tt.attempt, tt.atLeast); got.Delay != tt.want {
			t.Errorf("TierFor(%d, %s) = %s, want %s", tt.attempt, tt.atLeast, got.Delay, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]func(*topology.Config){
		"TOPOLOGY_PREFIX":        func(c *topology.Config) { c.Prefix = "" },
		"MAX_DELIVERY_ATTEMPTS":  func(c *topology.Config) { c.MaxAttempts = 0 },
		"RETRY_INITIAL_INTERVAL": func(c *topology.Config) { c.RetryInitial = 0 },
		"RETRY_MULTIPLIER":       func(c *topology.Config) { c.RetryMultiplier = 0.5 },
		"RETRY_MAX_INTERVAL":     func(c *topology.Config) { c.RetryMax = time.Millisecond },
		"QUEUE_DELIVERY_LIMIT":   func(c *topology.Config) { c.DeliveryLimit = 4 },
		"EVENTS_MAX_AGE":         func(c *topology.Config) { c.Events, c.EventsMaxAge = true, 0 },
		"EVENTS_MAX_BYTES":       func(c *topology.Config) { c.Events, c.EventsMaxBytes = true, 1024 },
	}
	if err := defaults().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for name, breakIt := range tests {
		cfg := defaults()
		breakIt(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Validate() = %v, want an error naming it", name, err)
		}
	}
}

func TestDeclare_IsIdempotent(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	topo := brokertest.Declare(t, conn, cfg)
	if err := topo.Declare(conn); err != nil {
		t.Fatalf("second declare: %v", err)
	}
}

// With events on, Declare makes the stream with its retention, again and
// again; a changed retention is a MismatchError naming the stream.
func TestDeclare_EventStream(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.WithEvents(brokertest.Config(t))
	topo := brokertest.Declare(t, conn, cfg)
	if topo.Events != cfg.Prefix+".events" {
		t.Fatalf("stream %q, want %s.events", topo.Events, cfg.Prefix)
	}
	if err := topo.Declare(conn); err != nil {
		t.Fatalf("second declare: %v", err)
	}
	cfg.EventsMaxAge = 2 * time.Hour
	var mismatch *topology.MismatchError
	if err := topology.New(cfg).Declare(conn); !errors.As(err, &mismatch) || mismatch.Name != topo.Events {
		t.Errorf("declare with another retention: %v, want a MismatchError naming the stream", err)
	}
	off := brokertest.Config(t)
	if topology.New(off).Events != "" {
		t.Error("EVENTS=off names a stream")
	}
}

func TestDeclare_MismatchNamesQueueAndArgument(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	brokertest.Declare(t, conn, cfg)

	cfg.RetryInitial = 150 * time.Millisecond // first tier's TTL changes, and so its name; the main queue stays
	cfg.DeliveryLimit = 99
	err := topology.New(cfg).Declare(conn)
	var mismatch *topology.MismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("declare with other arguments: %v, want *MismatchError", err)
	}
	if mismatch.Name != cfg.Prefix+".registrations" || mismatch.Arg != "x-delivery-limit" {
		t.Errorf("mismatch names %s %q, want the main queue and x-delivery-limit", mismatch.Name, mismatch.Arg)
	}
	if strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Errorf("error is the broker's bare text: %v", err)
	}
}

// A message parked in a retry tier comes back to the main queue by itself
// after the tier's TTL, through at-least-once dead-lettering.
func TestTier_ReturnsMessageToMainQueueAfterTTL(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, brokertest.Config(t))
	tier := topo.Tiers()[1] // 200ms
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	sent := time.Now()
	err = ch.Publish("", tier.Queue, true, false, amqp.Publishing{MessageId: "m1", DeliveryMode: amqp.Persistent, Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	d := brokertest.Get(t, conn, topo.Queue, 10*time.Second)
	if waited := time.Since(sent); waited < tier.Delay {
		t.Errorf("back after %s, before the tier's %s", waited, tier.Delay)
	}
	if d.MessageId != "m1" || string(d.Body) != "x" {
		t.Errorf("got %q %q, want m1 x", d.MessageId, d.Body)
	}
}

// A message whose consumer dies again and again (here: rejects it with
// requeue) is dead-lettered by the broker itself after QUEUE_DELIVERY_LIMIT
// deliveries, into the dead-letter queue, where it reads as rejected-by-broker.
func TestMainQueue_DeliveryLimitDeadLettersCrashLoops(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	cfg.DeliveryLimit = 5
	topo := brokertest.Declare(t, conn, cfg)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Publish(topo.Exchange, topo.Queue, true, false, amqp.Publishing{MessageId: "crash", DeliveryMode: amqp.Persistent, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	for {
		d, ok, err := ch.Get(topo.Queue, false /* autoAck */)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if brokertest.Depth(t, conn, topo.DeadQueue) > 0 {
				break
			}
			if deliveries > 50 {
				t.Fatalf("still not dead-lettered after %d deliveries", deliveries)
			}
			time.Sleep(10 * time.Millisecond) // the broker moves it asynchronously
			continue
		}
		deliveries++
		if err := d.Reject(true /* requeue */); err != nil {
			t.Fatal(err)
		}
	}
	dead := brokertest.Get(t, conn, topo.DeadQueue, 5*time.Second)
	if dead.MessageId != "crash" {
		t.Errorf("dead letter %q, want crash", dead.MessageId)
	}
	if got := envelope.Read(dead).Reason; got != envelope.ReasonRejectedByBroker {
		t.Errorf("reason %q, want %q", got, envelope.ReasonRejectedByBroker)
	}
	if deliveries < cfg.DeliveryLimit || deliveries > cfg.DeliveryLimit+1 {
		t.Errorf("dead-lettered after %d deliveries, want about the limit of %d", deliveries, cfg.DeliveryLimit)
	}
}

func TestLimitPolicy_NamesTheMainQueueExactly(t *testing.T) {
	cfg := defaults()
	cfg.MaxLength, cfg.MaxBytes = 10, 2048
	name, p, ok := topology.New(cfg).LimitPolicy()
	if !ok || name != "relay-limits.catering.registrations" || p.Pattern != `^catering\.registrations$` || p.ApplyTo != "queues" {
		t.Errorf("LimitPolicy() = %q %+v %v", name, p, ok)
	}
	if p.Definition["max-length"] != 10 || p.Definition["max-length-bytes"] != 2048 || p.Definition["overflow"] != "reject-publish" {
		t.Errorf("definition %v", p.Definition)
	}
	cfg.MaxBytes = 0
	if _, p, _ := topology.New(cfg).LimitPolicy(); len(p.Definition) != 2 {
		t.Errorf("no byte bound: definition %v, want max-length and overflow only", p.Definition)
	}
	cfg.MaxLength = 0
	if _, _, ok := topology.New(cfg).LimitPolicy(); ok {
		t.Error("no bounds: ok, want no policy")
	}
}

// A full main queue refuses new messages (a nack: the ingress answers 503),
// keeps every message it holds, and takes new ones once it has room again.
func TestLimitPolicy_FullQueueRefusesAndKeepsWhatItHolds(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	cfg.MaxLength = 5
	topo := brokertest.Declare(t, conn, cfg)
	brokertest.ApplyLimits(t, topo)
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Detach)
	publish := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return pub.Publish(ctx, topo.Exchange, topo.Queue, envelope.New(id, []byte("{}"), time.Now()))
	}

	var accepted []string
	refused := 0
	for i := range 20 {
		id := fmt.Sprint("m-", i)
		switch err := publish(id); {
		case err == nil:
			accepted = append(accepted, id)
		case errors.Is(err, broker.ErrNacked):
			refused++
		default:
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	// A quorum queue checks its length a little lazily: it may take one more.
	if len(accepted) < cfg.MaxLength || len(accepted) > cfg.MaxLength+1 || refused == 0 {
		t.Fatalf("accepted %d, refused %d; want %d (or one more) accepted, the rest refused", len(accepted), refused, cfg.MaxLength)
	}
	t.Logf("max length %d: accepted %d, refused %d", cfg.MaxLength, len(accepted), refused)
	for i, want := range accepted {
		d := brokertest.Get(t, conn, topo.Queue, 5*time.Second)
		if d.MessageId != want {
			t.Fatalf("message %d is %q, want %q: the queue dropped or reordered what it held", i, d.MessageId, want)
		}
		if i == 1 {
			// Room again: intake resumes by itself.
			if err := publish("after"); err != nil {
				t.Fatalf("publish after making room: %v", err)
			}
		}
	}
	if d := brokertest.Get(t, conn, topo.Queue, 5*time.Second); d.MessageId != "after" {
		t.Errorf("last message %q, want the one published after making room", d.MessageId)
	}
	if n := brokertest.Depth(t, conn, topo.Queue); n != 0 {
		t.Errorf("%d messages left, want 0", n)
	}
}
