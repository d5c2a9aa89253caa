// Package forwarder moves registrations from RabbitMQ to the Catering backend.
//
// Every message ends in exactly one of three places, and always by
// "publish with confirm, then ack": acked after a 2xx; republished to a retry
// tier after a transient failure; republished to the dead-letter exchange after
// the last attempt or a permanent refusal. If the forwarder dies between the
// publish and the ack, the broker redelivers the original and the backend may
// see it twice (it dedupes on Idempotency-Key); the message is never lost.
//
// With events on (Options.Events), each settlement also publishes the
// attempt's events (package events) beside the move, pipelined with it, and
// acks only once the broker confirmed the move and every event: a crash
// duplicates events, never loses one.
package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
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
	// HoldMax is how long a worker holds a message while the breaker is open
	// before handing it back to the queue; below the broker's consumer_timeout
	// (30 min by default), which would otherwise close the channel.
	HoldMax time.Duration
	// Observer is told what happens to each delivery; nil tells no one.
	Observer Observer
	// Events publishes each delivery's events; nil or off publishes none.
	Events *events.Emitter
}

// Breaker decides when attempts may be made; see package breaker.
type Breaker interface {
	Acquire(ctx context.Context, hold time.Duration) (probe bool, err error)
	Record(id string, f breaker.Failure, probe bool, cause string)
}

// Forwarder consumes the main queue and delivers each message.
type Forwarder struct {
	opts   Options
	topo   *topology.Topology
	pub    Publisher
	sender Sender
	brk    Breaker
	policy Policy
	obs    Observer
	log    *slog.Logger
	now    func() time.Time
	parked sync.WaitGroup // moves waiting for publishing to work again
	async  sync.WaitGroup // held events on their way (nothing waits for their confirm)
	// settling counts moves whose confirms are awaited beside the workers
	// (events on): a worker goes on with its next delivery meanwhile, the
	// prefetch bounding how many wait.
	settling sync.WaitGroup
}

// New returns a Forwarder.
func New(opts Options, topo *topology.Topology, pub Publisher, sender Sender, brk Breaker, log *slog.Logger) *Forwarder {
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	policy := Policy{MaxAttempts: topo.MaxAttempts, NonRetryable: opts.NonRetryable}
	return &Forwarder{opts: opts, topo: topo, pub: pub, sender: sender, brk: brk, policy: policy, obs: obs, log: log, now: time.Now}
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

	// Handlers stop holding and retrying as soon as the channel is gone:
	// nothing they hold can be acked any more.
	hctx, stopHandlers := context.WithCancel(ctx)
	defer stopHandlers()
	var workers sync.WaitGroup
	for range f.opts.Concurrency {
		workers.Go(func() {
			for d := range deliveries {
				f.Handle(hctx, d)
			}
		})
	}
	// The broker may cancel the consumer itself (queue deleted): deliveries
	// then close while the channel stays open.
	stopped := make(chan struct{})
	go func() { workers.Wait(); close(stopped) }()

	select {
	case <-ctx.Done():
		f.log.Info("stopping: finishing in-flight deliveries")
		if err := ch.Cancel(tag, false /* noWait */); err != nil {
			f.log.Warn("cancel consumer", "err", err)
		}
		<-stopped // the library closes deliveries after handing over what it holds
		f.settling.Wait()
		f.parked.Wait()
		f.async.Wait()
		if err := ch.Close(); err != nil {
			f.log.Warn("close consumer channel", "err", err)
		}
		return nil
	case err := <-closed:
		stopHandlers()
		<-stopped
		f.settling.Wait()
		f.parked.Wait()
		f.async.Wait()
		if err == nil {
			return errors.New("consumer channel closed")
		}
		return fmt.Errorf("consumer channel closed: %w", err)
	case <-stopped:
		stopHandlers()
		f.settling.Wait()
		f.parked.Wait()
		f.async.Wait()
		_ = ch.Close()
		return errors.New("consumer cancelled by the broker")
	}
}

// Handle delivers d and settles it. It is safe for concurrent use. With
// events on, a delivery's or a retry's settlement (events and move
// confirmed, then the ack) may finish after Handle returns; Consume waits
// for it before it closes the channel.
//
// It waits while the breaker is open, makes an attempt, and does what
// Policy.Decide says: ack, retry tier, dead letter, or hold (an attempt that
// is not counted: tried again when the breaker allows). A message that cannot
// be sent at all is dead-lettered before any attempt. A started attempt is not
// cut short by ctx (shutdown): it finishes within DeliveryTimeout and its
// outcome is recorded.
func (f *Forwarder) Handle(ctx context.Context, d amqp.Delivery) {
	// A message may be held (breaker open, attempts not counted, a move that
	// cannot be published) for HoldMax in all, then it goes back to the
	// queue: the broker's consumer_timeout must never fire.
	until := f.now().Add(f.opts.HoldMax)
	id := messageID(d)
	meta := envelope.Read(d)
	number := meta.Attempts + 1
	if err := delivery.ValidID(id); err != nil {
		a := envelope.Attempt{Number: meta.Attempts, At: f.now(), Err: err.Error()}
		v := f.policy.Decide(delivery.Result{Err: err}, number, false)
		f.deadLetter(ctx, func() *slog.Logger { return f.log.With("id", id) }, d, id, a, v.Reason, until, meta, nil)
		return
	}
	held := false
	for uncounted := 0; ; uncounted++ {
		if err := pause(ctx, uncounted); err != nil {
			f.giveBack(ctx, d, id, err, until)
			return
		}
		// Uncounted attempts while the breaker stays closed (one message
		// refused 401 while others go through, connections refused now and
		// then) are bounded by HoldMax too, not only waits for the breaker.
		if uncounted > 0 && !f.now().Before(until) {
			f.giveBack(ctx, d, id, errHeldTooLong, until)
			return
		}
		probe, err := f.brk.Acquire(ctx, max(until.Sub(f.now()), time.Nanosecond))
		if err != nil {
			f.giveBack(ctx, d, id, err, until)
			return
		}
		a, res := f.attempt(d, id, number)
		v := f.policy.Decide(res, number, probe)
		cause := a.Err
		if v.Cause != "" {
			cause = v.Cause + "; " + a.Err // what is wrong, then what the backend said
		}
		f.brk.Record(id, v.Health, probe, cause)
		f.obs.Result(resultLabel(res))
		log := func() *slog.Logger {
			l := f.log.With("id", id, "attempt", a.Number, "status", res.Status, "duration_ms", res.Duration.Milliseconds(), "probe", probe)
			if res.Location != "" {
				l = l.With("location", res.Location)
			}
			return l
		}
		if v.Action == Hold {
			if v.Cause != "" {
				// Relay's own configuration is wrong: said on every attempt,
				// also when others get through and the breaker stays closed.
				log().Warn("attempt", "outcome", OutcomeNotCounted, "cause", v.Cause, "err", a.Err)
			} else if f.log.Enabled(ctx, slog.LevelInfo) {
				log().Info("attempt", "outcome", OutcomeNotCounted, "err", a.Err)
			}
			f.obs.Outcome(OutcomeNotCounted)
			if !held {
				held = true
				f.emitHeld(base(d, id, meta, events.TypeHeld, number, f.now()), a.Err)
			}
			continue
		}
		f.obs.Attempted(a.Number, res.Duration)
		ev := base(d, id, meta, events.TypeAttempt, a.Number, a.At)
		ev.DurationMS, ev.Status, ev.Error, ev.Redelivered = events.Ms(res.Duration), res.Status, a.Err, d.Redelivered
		f.settle(ctx, log, d, id, a, res, v, meta, ev, until)
		return
	}
}

// errHeldTooLong is why a message tried again and again without its attempts
// being counted goes back to the queue.
var errHeldTooLong = errors.New("attempts not counted for BREAKER_HOLD_MAX")

// Uncounted attempts are tried again at once the first time, then after a
// growing pause: the breaker stops a real outage after a few failures, but a
// backend that refuses some connections while it takes others never trips it,
// and a worker must not hammer it in a tight loop meanwhile.
const (
	uncountedPause    = 100 * time.Millisecond
	uncountedPauseMax = 2 * time.Second
)

// pause waits before the nth retry of an uncounted attempt (none for n < 2).
func pause(ctx context.Context, n int) error {
	if n < 2 {
		return nil
	}
	t := time.NewTimer(min(time.Duration(n-1)*uncountedPause, uncountedPauseMax))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// attempt makes one delivery attempt. A panic in it becomes a failed
// attempt, so a message that triggers a bug cannot crash-loop the forwarder.
func (f *Forwarder) attempt(d amqp.Delivery, id string, number int) (a envelope.Attempt, res delivery.Result) {
	a = envelope.Attempt{Number: number, At: f.now()}
	defer func() {
		if r := recover(); r != nil {
			res = delivery.Result{Err: &delivery.PanicError{Value: r}, Duration: f.now().Sub(a.At)}
			a.Err = res.Err.Error()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.DeliveryTimeout)
	defer cancel()
	res = f.sender.Deliver(ctx, delivery.Request{ID: id, Attempt: number, Body: d.Body})
	a.Status = res.Status
	a.Location = res.Location
	if res.Err != nil {
		a.Err = res.Err.Error()
	}
	return a, res
}

// lazyLog returns the logger of one message's attempt. Building it (slog's
// With clones the handler and formats every attribute) is left until a line
// is written: at LOG_LEVEL=warn a delivered message writes none, and this
// was a measurable part of every attempt's CPU (docs/BENCHMARKS.md).
type lazyLog func() *slog.Logger

// settle acks, retries or dead-letters d after a counted attempt, as v says.
// attempt is the attempt's event, its outcome still to be set.
func (f *Forwarder) settle(ctx context.Context, log lazyLog, d amqp.Delivery, id string, a envelope.Attempt, res delivery.Result, v Verdict, meta envelope.Meta, attempt events.Event, until time.Time) {
	switch v.Action {
	case Ack:
		attempt.Outcome = OutcomeDelivered
		if !f.opts.Events.On() {
			// Nothing to confirm first: ack at once, as before events.
			f.delivered(log, meta, d.Ack(false))
			return
		}
		delivered := base(d, id, meta, events.TypeDelivered, a.Number, f.now())
		m := move{d: d, noMsg: true, events: []events.Event{attempt, delivered}, until: until, done: func(err error) {
			f.delivered(log, meta, err)
		}}
		f.ackAfterEvents(ctx, m)
	case DeadLetter:
		attempt.Outcome = OutcomeDeadLettered
		f.deadLetter(ctx, log, d, id, a, v.Reason, until, meta, &attempt)
	default:
		attempt.Outcome = OutcomeRetry
		tier := f.topo.TierFor(a.Number, res.RetryAfter)
		sched := base(d, id, meta, events.TypeRetryScheduled, a.Number, f.now())
		sched.Tier, sched.Due = tier.Queue, events.TimePtr(sched.At.Add(tier.Delay))
		m := move{d: d, key: tier.Queue, msg: envelope.Retry(d, a), until: until, done: func(err error) {
			f.logSettled(func() *slog.Logger { return log().With("err", a.Err, "retry_in", tier.Delay.String()) }, OutcomeRetry, err)
		}}
		if !f.opts.Events.On() {
			f.move(ctx, m)
			return
		}
		m.events = []events.Event{attempt, sched}
		f.settling.Go(func() { f.move(ctx, m) })
	}
}

// ackAfterEvents acks m.d once the broker confirmed m.events, without a
// goroutine of its own while all goes well: the emitter's flusher acks. A
// failed publish takes the long way, a move (tried again, parked, handed
// back). settling counts it until it is settled.
func (f *Forwarder) ackAfterEvents(ctx context.Context, m move) {
	f.settling.Add(1)
	f.opts.Events.PostAll(m.events, func(err error) {
		if err == nil {
			m.done(m.d.Ack(false))
			f.settling.Done()
			return
		}
		go func() {
			defer f.settling.Done()
			f.move(ctx, m)
		}()
	})
}

// delivered records an acked delivery (err nil) or a failed ack.
func (f *Forwarder) delivered(log lazyLog, meta envelope.Meta, err error) {
	f.logSettled(log, OutcomeDelivered, err)
	if err == nil && !meta.AcceptedAt.IsZero() {
		f.obs.Delivered(f.now().Sub(meta.AcceptedAt))
	}
}

// base is an event of d's registration with what every forwarder event
// carries.
func base(d amqp.Delivery, id string, meta envelope.Meta, typ string, attempt int, at time.Time) events.Event {
	return events.Event{Type: typ, ID: id, At: at.UTC(), AcceptedAt: events.TimePtr(meta.AcceptedAt), Redrive: meta.RedriveCount, Attempt: attempt}
}

// emitHeld publishes a held event without waiting for it: a held message is
// not settled, so nothing depends on its confirm. A lost held event leaves
// the status at the previous step until the next attempt's events.
func (f *Forwarder) emitHeld(ev events.Event, cause string) {
	if !f.opts.Events.On() {
		return
	}
	ev.Error = cause
	f.async.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.opts.PublishTimeout)
		defer cancel()
		if err := f.opts.Events.Emit(ctx, ev); err != nil {
			f.log.Debug("held event not stored", "id", ev.ID, "err", err)
		}
	})
}

// giveBack returns a message held while the breaker was open to the end of
// the main queue, unchanged, so that it neither loses its place for good nor
// ages past the broker's consumer timeout in our hands.
func (f *Forwarder) giveBack(ctx context.Context, d amqp.Delivery, id string, why error, until time.Time) {
	f.move(ctx, move{d: d, exchange: f.topo.Exchange, key: f.topo.Queue, msg: envelope.Requeue(d), until: until, done: func(err error) {
		f.logSettled(func() *slog.Logger { return f.log.With("id", id, "why", why.Error()) }, OutcomeReturnedToQueue, err)
	}})
}

// deadLetter moves d to the dead-letter exchange with its dead_lettered
// event, and attempt's event when an attempt was made (attempt non-nil).
func (f *Forwarder) deadLetter(ctx context.Context, log lazyLog, d amqp.Delivery, id string, a envelope.Attempt, reason string, until time.Time, meta envelope.Meta, attempt *events.Event) {
	now := f.now()
	dead := base(d, id, meta, events.TypeDeadLettered, a.Number, now)
	dead.Reason = reason
	evs := []events.Event{dead}
	if attempt != nil {
		evs = append(evs, *attempt)
	}
	f.move(ctx, move{d: d, exchange: f.topo.DeadExchange, key: f.topo.Queue, msg: envelope.Dead(d, a, reason, now), until: until, events: evs, done: func(err error) {
		f.logSettled(func() *slog.Logger { return log().With("err", a.Err, "reason", reason) }, OutcomeDeadLettered, err)
		if err != nil {
			return
		}
		f.obs.DeadLettered(reason)
		msg := fmt.Sprintf("message %s failed to forward %d times; moved to %s", id, a.Number, f.topo.DeadQueue)
		if a.Number == 0 {
			msg = fmt.Sprintf("message %s cannot be forwarded (%s); moved to %s", id, reason, f.topo.DeadQueue)
		}
		f.log.Warn(msg, "id", id, "attempts", a.Number, "reason", reason, "last_status", a.Status, "err", a.Err)
	}})
}

// move is one message's trip elsewhere: publish msg and events, then settle d.
type move struct {
	d             amqp.Delivery
	exchange, key string
	msg           amqp.Publishing
	noMsg         bool            // only events to publish (a delivery: its events, then the ack)
	events        []events.Event  // published beside msg, confirmed before the ack
	until         time.Time       // hand d back to the queue rather than hold it longer
	done          func(err error) // told how it ended, once: nil when msg is stored and d acked
}

// move publishes m.msg and, once the broker confirmed it, acks m.d. When the
// publish fails (the publishing connection is blocked by a resource alarm or
// lost, the queue is full) the move is parked: tried again after growing
// pauses, outside the worker, which goes on with the next delivery (the
// deliveries held so are bounded by the prefetch). A parked move gives up at
// m.until or when ctx ends: d goes back to the queue (nack, requeue), to be
// tried again later. Handing it back at once would bring it straight back
// and hammer the backend while publishing cannot work.
func (f *Forwarder) move(ctx context.Context, m move) {
	err := f.publish(m)
	if err == nil {
		m.done(m.d.Ack(false))
		return
	}
	if ctx.Err() != nil || !f.now().Before(m.until) {
		m.done(requeue(m, err, 1))
		return
	}
	f.log.Warn("move not confirmed; parked and tried again", "id", messageID(m.d), "to", m.key, "err", err)
	f.parked.Go(func() { m.done(f.retry(ctx, m)) })
}

// retry tries a parked move again until it succeeds, ctx ends or m.until
// passes.
func (f *Forwarder) retry(ctx context.Context, m move) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(moveRetryInitial),
		backoff.WithMaxInterval(moveRetryMax),
		backoff.WithMaxElapsedTime(0),
	)
	for tries := 2; ; tries++ {
		wait := min(b.NextBackOff(), max(m.until.Sub(f.now()), 0))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		err := f.publish(m) // once more even when ctx ended: the publisher may work by now
		if err == nil {
			return m.d.Ack(false)
		}
		if ctx.Err() != nil || !f.now().Before(m.until) {
			return requeue(m, err, tries)
		}
	}
}

// publish publishes m's message and events at once (their confirms are
// pipelined) and waits for every confirm. Tried again after a failure, it
// publishes them all again: an event may then be stored twice, which
// events.Fold ignores.
func (f *Forwarder) publish(m move) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.PublishTimeout)
	defer cancel()
	if len(m.events) == 0 || !f.opts.Events.On() {
		if m.noMsg {
			return nil
		}
		return f.pub.Publish(ctx, m.exchange, m.key, m.msg)
	}
	if m.noMsg {
		return f.opts.Events.EmitAll(ctx, m.events...)
	}
	evErr := make(chan error, 1)
	go func() { evErr <- f.opts.Events.EmitAll(ctx, m.events...) }()
	err := f.pub.Publish(ctx, m.exchange, m.key, m.msg)
	return errors.Join(err, <-evErr)
}

// requeue hands m.d back to the queue after its move failed tries times.
func requeue(m move, err error, tries int) error {
	if nackErr := m.d.Nack(false /* multiple */, true /* requeue */); nackErr != nil {
		return fmt.Errorf("publish to %q (%d tries): %w (and requeue: %v; the broker requeues it when the channel closes)", m.key, tries, err, nackErr)
	}
	return fmt.Errorf("publish to %q (%d tries): %w (requeued)", m.key, tries, err)
}

// Pauses between tries of a parked move.
const (
	moveRetryInitial = 250 * time.Millisecond
	moveRetryMax     = 5 * time.Second
)

func (f *Forwarder) logSettled(log lazyLog, outcome string, err error) {
	if err != nil {
		log().Warn("attempt not settled", "outcome", OutcomeRequeued, "cause", err)
		f.obs.Outcome(OutcomeRequeued)
		return
	}
	if f.log.Enabled(context.Background(), slog.LevelInfo) {
		log().Info("attempt", "outcome", outcome)
	}
	f.obs.Outcome(outcome)
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
