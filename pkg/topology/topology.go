package topology

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokeradmin"
	"github.com/railco/relay/pkg/config"
)

// Config describes the topology. Both services load it from the same
// environment variables so they declare identical queues.
type Config struct {
	// Prefix names everything: exchange Prefix, queue Prefix+".registrations", ...
	Prefix string
	// MaxAttempts is how many delivery attempts a message gets before it is dead-lettered.
	MaxAttempts int
	// RetryInitial, RetryMultiplier and RetryMax shape the exponential retry schedule.
	RetryInitial    time.Duration
	RetryMultiplier float64
	RetryMax        time.Duration
	// DeliveryLimit is the main queue's x-delivery-limit: how often the broker
	// redelivers a message whose consumer died before it dead-letters it
	// (a crash-loop guard; well above MaxAttempts).
	DeliveryLimit int
	// MaxLength and MaxBytes bound the main queue's ready messages and their
	// body bytes (0: no bound). They are a policy (LimitPolicy), not queue
	// arguments, so that changing them needs no redeclaration.
	MaxLength int
	MaxBytes  int
	// Events turns the event stream on (EVENTS, default on): every step of a
	// registration's life is published to the stream Prefix+".events"
	// (package events). Off, no stream is declared and nothing is published.
	Events bool
	// EventsMaxAge and EventsMaxBytes are the stream's retention: segments
	// older than EventsMaxAge, or beyond EventsMaxBytes in all, are deleted.
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
}

// LoadConfig reads the topology settings shared by all services.
func LoadConfig(l *config.Loader) Config {
	return Config{
		Prefix:          l.String("TOPOLOGY_PREFIX", "catering"),
		MaxAttempts:     l.Int("MAX_DELIVERY_ATTEMPTS", 4),
		RetryInitial:    l.Duration("RETRY_INITIAL_INTERVAL", time.Second),
		RetryMultiplier: l.Float("RETRY_MULTIPLIER", 5),
		RetryMax:        l.Duration("RETRY_MAX_INTERVAL", 10*time.Minute),
		DeliveryLimit:   l.Int("QUEUE_DELIVERY_LIMIT", 100),
		MaxLength:       l.Int("QUEUE_MAX_LENGTH", DefaultMaxLength),
		MaxBytes:        l.Int("QUEUE_MAX_BYTES", DefaultMaxBytes),
		Events:          l.Switch("EVENTS", true),
		EventsMaxAge:    l.Duration("EVENTS_MAX_AGE", DefaultEventsMaxAge),
		EventsMaxBytes:  int64(l.Int("EVENTS_MAX_BYTES", DefaultEventsMaxBytes)),
	}
}

// Default retention of the event stream: a week of history, and at most
// 5 GiB of it (a registration's life is 3 to 10 events of ~250 bytes: 5 GiB
// hold some 3 million registrations).
const (
	DefaultEventsMaxAge   = 7 * 24 * time.Hour
	DefaultEventsMaxBytes = 5 << 30
)

// Default bounds of the main queue: far beyond any backlog a healthy system
// builds (a day's outage at 10 registrations/s is 864,000), far below what
// fills a broker's disk: 512 MiB of bodies takes about 1 GiB of quorum-queue
// log per replica.
const (
	DefaultMaxLength = 1_000_000
	DefaultMaxBytes  = 512 << 20
)

// Validate reports settings that cannot describe a working topology.
func (c Config) Validate() error {
	var errs []error
	if c.Prefix == "" {
		errs = append(errs, errors.New("TOPOLOGY_PREFIX must not be empty"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("MAX_DELIVERY_ATTEMPTS must be at least 1"))
	}
	if c.RetryInitial < time.Millisecond {
		errs = append(errs, errors.New("RETRY_INITIAL_INTERVAL must be at least 1ms"))
	}
	if c.RetryMultiplier < 1 {
		errs = append(errs, errors.New("RETRY_MULTIPLIER must be at least 1"))
	}
	if c.RetryMax < c.RetryInitial {
		errs = append(errs, errors.New("RETRY_MAX_INTERVAL must not be below RETRY_INITIAL_INTERVAL"))
	}
	if c.MaxLength < 0 {
		errs = append(errs, errors.New("QUEUE_MAX_LENGTH must be 0 (no bound) or more"))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, errors.New("QUEUE_MAX_BYTES must be 0 (no bound) or more"))
	}
	if c.Events && c.EventsMaxAge < time.Second {
		errs = append(errs, errors.New("EVENTS_MAX_AGE must be at least 1s"))
	}
	if c.Events && c.EventsMaxBytes < 1<<20 {
		errs = append(errs, errors.New("EVENTS_MAX_BYTES must be at least 1048576 (1 MiB)"))
	}
	if c.DeliveryLimit <= c.MaxAttempts {
		errs = append(errs, errors.New("QUEUE_DELIVERY_LIMIT must be above MAX_DELIVERY_ATTEMPTS"))
	}
	return errors.Join(errs...)
}

// Tier is one delayed-retry queue: messages published to it come back to the
// main queue after Delay.
type Tier struct {
	Queue string
	Delay time.Duration
}

// Topology holds the resolved names and retry tiers.
type Topology struct {
	Exchange     string // direct exchange the ingress publishes to
	Queue        string // main quorum queue, also the routing key
	DeadExchange string // fanout exchange for dead letters
	DeadQueue    string // where dead letters rest
	// Events is the stream every registration's events go to (package
	// events), published through the default exchange; "" when EVENTS=off.
	Events      string
	MaxAttempts int
	// Log, if set, is told what Declare did beyond declaring: a migration.
	Log *slog.Logger

	delays         []time.Duration // delays[n-1] is the wait after failed attempt n
	tiers          []Tier          // distinct delays, ascending
	deliveryLimit  int
	maxLength      int
	maxBytes       int
	eventsMaxAge   time.Duration
	eventsMaxBytes int64
}

// New resolves cfg into names and tiers. cfg must be valid.
func New(cfg Config) *Topology {
	t := &Topology{
		Exchange:       cfg.Prefix,
		Queue:          cfg.Prefix + ".registrations",
		DeadExchange:   cfg.Prefix + ".dlx",
		DeadQueue:      cfg.Prefix + ".registrations.dead",
		MaxAttempts:    cfg.MaxAttempts,
		delays:         Schedule(cfg.RetryInitial, cfg.RetryMultiplier, cfg.RetryMax, cfg.MaxAttempts-1),
		deliveryLimit:  cfg.DeliveryLimit,
		maxLength:      cfg.MaxLength,
		maxBytes:       cfg.MaxBytes,
		eventsMaxAge:   cfg.EventsMaxAge,
		eventsMaxBytes: cfg.EventsMaxBytes,
	}
	if cfg.Events {
		t.Events = cfg.Prefix + ".events"
	}
	seen := map[time.Duration]bool{}
	for _, d := range t.delays {
		if !seen[d] {
			seen[d] = true
			t.tiers = append(t.tiers, Tier{Queue: fmt.Sprintf("%s.retry.%s", t.Queue, d), Delay: d})
		}
	}
	sort.Slice(t.tiers, func(i, j int) bool { return t.tiers[i].Delay < t.tiers[j].Delay })
	return t
}

// Schedule returns n delays of the exponential schedule built by
// cenkalti/backoff without jitter: a tier per delay needs fixed values. Delays
// are rounded to milliseconds, the unit of x-message-ttl.
func Schedule(initial time.Duration, multiplier float64, max time.Duration, n int) []time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMultiplier(multiplier),
		backoff.WithMaxInterval(max),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	out := make([]time.Duration, 0, n)
	for range n {
		out = append(out, b.NextBackOff().Round(time.Millisecond))
	}
	return out
}

// Tiers returns the retry tiers, shortest delay first.
func (t *Topology) Tiers() []Tier { return t.tiers }

// TierFor picks where a message goes after failed attempt n (1-based): the
// schedule's tier for n, or a longer one when the backend asked to wait at
// least atLeast (Retry-After). A wait longer than every tier gets the longest.
func (t *Topology) TierFor(attempt int, atLeast time.Duration) Tier {
	want := t.delays[min(max(attempt, 1), len(t.delays))-1]
	want = max(want, atLeast)
	for _, tier := range t.tiers {
		if tier.Delay >= want {
			return tier
		}
	}
	return t.tiers[len(t.tiers)-1]
}

// queue describes one queue declaration.
type queue struct {
	name string
	args amqp.Table
}

func (t *Topology) queues() []queue {
	qs := []queue{
		{t.Queue, amqp.Table{
			amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
			"x-dead-letter-exchange": t.DeadExchange,
			"x-dead-letter-strategy": "at-least-once",
			amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
			"x-delivery-limit":       int64(t.deliveryLimit),
		}},
	}
	for _, tier := range t.tiers {
		qs = append(qs, queue{tier.Queue, amqp.Table{
			amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
			amqp.QueueMessageTTLArg:     tier.Delay.Milliseconds(),
			"x-dead-letter-exchange":    t.Exchange,
			"x-dead-letter-routing-key": t.Queue,
			"x-dead-letter-strategy":    "at-least-once",
			amqp.QueueOverflowArg:       amqp.QueueOverflowRejectPublish,
		}})
	}
	if t.Events != "" {
		qs = append(qs, queue{t.Events, t.eventsArgs()})
	}
	return qs
}

// eventsArgs are the event stream's arguments: a stream (replicated,
// append-only, read from any offset by any number of consumers) whose
// oldest segments are deleted by age and by size. x-max-age takes whole
// seconds here ("604800s"); RabbitMQ compares the arguments of a redeclared
// queue, so a changed retention is reported as a MismatchError.
func (t *Topology) eventsArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:         amqp.QueueTypeStream,
		amqp.StreamMaxAgeArg:      fmt.Sprintf("%ds", int64(t.eventsMaxAge/time.Second)),
		amqp.StreamMaxLenBytesArg: t.eventsMaxBytes,
	}
}

// deadDeliveryLimit is the dead-letter queue's x-delivery-limit. Browsing
// dead letters (relayctl dead list, the management UI's "Get messages")
// takes them and puts them back, and each time counts as a delivery; on
// RabbitMQ 4 a quorum queue without a limit has one of 20, beyond which it
// drops the message (the dead-letter queue has nowhere to dead-letter to).
// A billion browses is out of reach; the same number works on 3.x, where no
// limit is the default. Fixed for ever: a queue's arguments cannot change.
const deadDeliveryLimit = 1_000_000_000

// deadArgs are the dead-letter queue's arguments: a quorum queue, replicated
// like the others, that never drops a letter for being browsed.
func (t *Topology) deadArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:  amqp.QueueTypeQuorum,
		"x-delivery-limit": int64(deadDeliveryLimit),
	}
}

// Declare declares every exchange, queue and binding. It is idempotent. When
// an existing queue or exchange was declared with other arguments it returns a
// *MismatchError naming it and the argument.
func (t *Topology) Declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()

	exchanges := []struct{ name, kind string }{{t.Exchange, amqp.ExchangeDirect}, {t.DeadExchange, amqp.ExchangeFanout}}
	for _, ex := range exchanges {
		err := ch.ExchangeDeclare(ex.name, ex.kind, true /* durable */, false /* autoDelete */, false /* internal */, false /* noWait */, nil)
		if err != nil {
			return declareError("exchange", ex.name, err)
		}
	}
	for _, q := range t.queues() {
		if _, err := ch.QueueDeclare(q.name, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, q.args); err != nil {
			return declareError("queue", q.name, err)
		}
	}
	if err := ch.QueueBind(t.Queue, t.Queue, t.Exchange, false /* noWait */, nil); err != nil {
		return fmt.Errorf("bind %s to %s: %w", t.Queue, t.Exchange, err)
	}
	moved, err := t.declareDead(conn)
	if moved > 0 && t.Log != nil {
		t.Log.Warn("migrated the classic dead-letter queue to a quorum queue", "queue", t.DeadQueue, "letters", moved)
	}
	return err
}

// Delete removes everything Declare made, messages included. It is for tests
// and tear-down scripts, never for the services.
func (t *Topology) Delete(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	var errs []error
	for _, q := range append(t.queues(), queue{name: t.DeadQueue}, queue{name: t.holdingQueue()}) {
		if _, err := ch.QueueDelete(q.name, false /* ifUnused */, false /* ifEmpty */, false /* noWait */); err != nil {
			errs = append(errs, fmt.Errorf("delete queue %s: %w", q.name, err))
		}
	}
	for _, ex := range []string{t.Exchange, t.DeadExchange} {
		if err := ch.ExchangeDelete(ex, false /* ifUnused */, false /* noWait */); err != nil {
			errs = append(errs, fmt.Errorf("delete exchange %s: %w", ex, err))
		}
	}
	return errors.Join(errs...)
}

// QueueNames lists every queue of the topology: main, tiers, dead.
func (t *Topology) QueueNames() []string {
	names := []string{t.Queue}
	for _, tier := range t.tiers {
		names = append(names, tier.Queue)
	}
	return append(names, t.DeadQueue)
}

// LimitPolicyPriority is the priority of the limit policy. Only one policy
// applies to a queue, the matching one with the highest priority: an
// operator's own policy for the main queue needs a higher one, and then
// carries the limits itself.
const LimitPolicyPriority = 100

// LimitPolicy returns the policy that bounds the main queue: its name, and the
// policy itself. ok is false when neither bound is set; the policy named
// should then be deleted. When the queue is full the broker refuses new
// messages (overflow reject-publish: a nack to the publisher) and drops none
// it holds; retry tiers that dead-letter into it at least once keep their
// messages until it has room.
func (t *Topology) LimitPolicy() (name string, p brokeradmin.Policy, ok bool) {
	name = "relay-limits." + t.Queue
	def := map[string]any{"overflow": "reject-publish"}
	if t.maxLength > 0 {
		def["max-length"] = t.maxLength
	}
	if t.maxBytes > 0 {
		def["max-length-bytes"] = t.maxBytes
	}
	return name, brokeradmin.Policy{
		Pattern:    "^" + regexp.QuoteMeta(t.Queue) + "$",
		ApplyTo:    "queues",
		Priority:   LimitPolicyPriority,
		Definition: def,
	}, t.maxLength > 0 || t.maxBytes > 0
}
