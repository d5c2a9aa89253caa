// Package forwarder moves registrations from RabbitMQ to the Catering backend.
//
// Every message ends in exactly one of three places, and always by
// "publish with confirm, then ack": acked after a 2xx; republished to a retry
// tier after a transient failure; republished to the dead-letter exchange after
// the last attempt or a permanent refusal. If the forwarder dies between the
// publish and the ack, the broker redelivers the original and the backend may
// see it twice (it dedupes on Idempotency-Key); the message is never lost.
package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/delivery"
)

// Publisher stores a message and returns nil only once the broker confirmed it.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// Sender makes one delivery attempt; it must respect ctx's deadline.
type Sender interface {
	Deliver(ctx context.Context, r delivery.Request) delivery.Result
}

// Options configure a Forwarder.
type Options struct {
	Concurrency     int           // workers handling deliveries at once
	Prefetch        int           // unacked deliveries the broker may push ahead
	DeliveryTimeout time.Duration // bound of one attempt
	PublishTimeout  time.Duration // bound of one confirm wait when moving a message
	NonRetryable    map[int]bool  // statuses that dead-letter at once
}

// Forwarder consumes the main queue and delivers each message.
type Forwarder struct {
	opts   Options
	topo   *topology.Topology
	pub    Publisher
	sender Sender
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Forwarder.
func New(opts Options, topo *topology.Topology, pub Publisher, sender Sender, log *slog.Logger) *Forwarder {
	return &Forwarder{opts: opts, topo: topo, pub: pub, sender: sender, log: log, now: time.Now}
}

// Consume delivers messages from the main queue on conn until ctx ends or the
// channel is lost. On ctx's end it shuts down gracefully: it cancels the
// consumer, finishes every delivery already received (each bounded by
// DeliveryTimeout), settles it, and closes the channel; then it returns nil.
// On channel loss it waits for its workers and returns an error; unsettled
// messages go back to the queue by the broker's own doing.
func (f *Forwarder) Consume(ctx context.Context, conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open consumer channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(f.opts.Prefetch, 0, false /* global */); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	tag := consumerTag()
	deliveries, err := ch.Consume(f.topo.Queue, tag, false /* autoAck */, false /* exclusive */, false /* noLocal */, false /* noWait */, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", f.topo.Queue, err)
	}
	f.log.Info("consuming", "queue", f.topo.Queue, "concurrency", f.opts.Concurrency, "prefetch", f.opts.Prefetch)

	var workers sync.WaitGroup
	for range f.opts.Concurrency {
		workers.Go(func() {
			for d := range deliveries {
				f.Handle(d)
			}
		})
	}

	select {
	case <-ctx.Done():
		f.log.Info("stopping: finishing in-flight deliveries")
		if err := ch.Cancel(tag, false /* noWait */); err != nil {
			f.log.Warn("cancel consumer", "err", err)
		}
		workers.Wait() // the library closes deliveries after handing over what it holds
		if err := ch.Close(); err != nil {
			f.log.Warn("close consumer channel", "err", err)
		}
		return nil
	case err := <-closed:
		workers.Wait()
		if err == nil {
			return fmt.Errorf("consumer channel closed")
		}
		return fmt.Errorf("consumer channel closed: %w", err)
	}
}

// Handle makes one attempt to deliver d and settles it. It is safe for
// concurrent use. The attempt and the moves that follow it are not cancelled
// by shutdown: a started attempt finishes within DeliveryTimeout, and its
// outcome is recorded.
func (f *Forwarder) Handle(d amqp.Delivery) {
	meta := envelope.Read(d)
	id := messageID(d)
	attempt := envelope.Attempt{Number: meta.Attempts + 1, At: f.now()}

	ctx, cancel := context.WithTimeout(context.Background(), f.opts.DeliveryTimeout)
	res := f.sender.Deliver(ctx, delivery.Request{ID: id, Attempt: attempt.Number, Body: d.Body})
	cancel()
	attempt.Status = res.Status
	if res.Err != nil {
		attempt.Err = res.Err.Error()
	}
	outcome := delivery.Classify(res, f.opts.NonRetryable)

	log := f.log.With("id", id, "attempt", attempt.Number, "status", res.Status, "duration_ms", res.Duration.Milliseconds())
	switch {
	case outcome == delivery.Delivered:
		f.settle(log, d, outcome.String(), d.Ack(false))
	case outcome == delivery.Reject:
		f.deadLetter(log, d, id, attempt, envelope.ReasonNonRetryable)
	case attempt.Number >= f.topo.MaxAttempts:
		f.deadLetter(log, d, id, attempt, envelope.ReasonMaxAttempts)
	default:
		tier := f.topo.TierFor(attempt.Number, res.RetryAfter)
		err := f.move(d, "", tier.Queue, envelope.Retry(d, attempt))
		f.settle(log.With("err", attempt.Err, "retry_in", tier.Delay.String()), d, "retry", err)
	}
}

func (f *Forwarder) deadLetter(log *slog.Logger, d amqp.Delivery, id string, a envelope.Attempt, reason string) {
	err := f.move(d, f.topo.DeadExchange, f.topo.Queue, envelope.Dead(d, a, reason, f.now()))
	f.settle(log.With("err", a.Err, "reason", reason), d, "dead-lettered", err)
	if err == nil {
		f.log.Warn(fmt.Sprintf("message %s failed to forward %d times; moved to %s", id, a.Number, f.topo.DeadQueue),
			"id", id, "attempts", a.Number, "reason", reason, "last_status", a.Status)
	}
}

// move publishes msg and, once the broker confirmed it, acks d. When the
// publish fails d goes back to the queue instead, to be tried again.
func (f *Forwarder) move(d amqp.Delivery, exchange, key string, msg amqp.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.PublishTimeout)
	defer cancel()
	if err := f.pub.Publish(ctx, exchange, key, msg); err != nil {
		if nackErr := d.Nack(false /* multiple */, true /* requeue */); nackErr != nil {
			return fmt.Errorf("publish to %q: %w (and requeue: %v; the broker requeues it when the channel closes)", key, err, nackErr)
		}
		return fmt.Errorf("publish to %q: %w (requeued)", key, err)
	}
	return d.Ack(false)
}

func (f *Forwarder) settle(log *slog.Logger, d amqp.Delivery, outcome string, err error) {
	if err != nil {
		log.Warn("attempt not settled", "outcome", "requeued", "cause", err)
		return
	}
	log.Info("attempt", "outcome", outcome)
}

// messageID is the AMQP message id the ingress set. A message published by
// someone else may have none: a hash of its body then gives the same
// Idempotency-Key on every attempt.
func messageID(d amqp.Delivery) string {
	if d.MessageId != "" {
		return d.MessageId
	}
	sum := sha256.Sum256(d.Body)
	return "sha256-" + hex.EncodeToString(sum[:16])
}

func consumerTag() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("relay-forwarder-%s-%d", host, os.Getpid())
}
