package events

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Version is the schema version this package writes (Event.V).
const Version = 1

// Event types.
const (
	TypeAccepted       = "accepted"        // the ingress stored the registration (confirmed)
	TypeAttempt        = "attempt"         // the forwarder made a counted delivery attempt
	TypeRetryScheduled = "retry_scheduled" // it waits in a retry tier
	TypeHeld           = "held"            // the breaker holds it: the backend is down, attempts are not counted
	TypeDelivered      = "delivered"       // the backend took it (a complete 2xx)
	TypeDeadLettered   = "dead_lettered"   // moved to the dead-letter queue
	TypeRedriven       = "redriven"        // sent back from the dead-letter queue to the main queue
	TypePurged         = "purged"          // deleted from the dead-letter queue for good
)

// HeaderVersion carries Event.V in the AMQP headers, so a consumer can skip
// versions it does not know without parsing the body.
const HeaderVersion = "x-relay-event-version"

// Event is one step of a registration's life. Fields beyond V, Type, ID and
// At are set where they apply (see the README's event table).
type Event struct {
	V      int       `json:"v"`
	Type   string    `json:"type"`
	ID     string    `json:"id"` // the registration's id (its AMQP message id)
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"` // ingress, forwarder, relayctl

	AcceptedAt *time.Time `json:"accepted_at,omitempty"` // when the ingress stored it; on every forwarder event
	Client     string     `json:"client,omitempty"`      // accepted: the API key's client

	// Redrive is the redrive generation: 0 until the first redrive, n after
	// the nth. Attempt numbers start at 1 again in each generation.
	Redrive     int    `json:"redrive,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`     // attempt, retry_scheduled, held, delivered, dead_lettered
	DurationMS  *int64 `json:"duration_ms,omitempty"` // attempt: the HTTP exchange
	Status      int    `json:"status,omitempty"`      // attempt: HTTP status, absent when none arrived
	Error       string `json:"error,omitempty"`       // attempt, held: what went wrong
	Outcome     string `json:"outcome,omitempty"`     // attempt: delivered, retry, dead-lettered
	Redelivered bool   `json:"redelivered,omitempty"` // attempt: the broker redelivered the message (a consumer died before settling it)

	Tier   string     `json:"tier,omitempty"`   // retry_scheduled: the retry queue
	Due    *time.Time `json:"due,omitempty"`    // retry_scheduled: when it comes back
	Reason string     `json:"reason,omitempty"` // dead_lettered: envelope.Reason*; purged, redriven: by whom/why
}

// ContentType of an event message.
const ContentType = "application/json"

// MessageType is the AMQP type property of an event message.
const MessageType = "relay.events"

// Message returns the AMQP message that carries evs (one or more events,
// of any registrations): its body is the JSON array of the events. Batching
// events into few messages is what keeps their cost low: the broker's
// work is mostly per message.
func Message(evs []Event) amqp.Publishing {
	for i := range evs {
		if evs[i].V == 0 {
			evs[i].V = Version
		}
	}
	body := appendMessage(evs) // json.Marshal(evs), byte for byte
	id := ""
	if len(evs) > 0 {
		id = evs[0].ID + "/" + evs[0].Type + "/" + strconv.Itoa(len(evs))
	}
	return amqp.Publishing{
		MessageId:    id,
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		Timestamp:    time.Now().UTC().Truncate(time.Second),
		Type:         MessageType,
		AppId:        "relay",
		Headers:      amqp.Table{HeaderVersion: int32(Version), HeaderCount: int32(len(evs))},
		Body:         body,
	}
}

// HeaderCount carries the number of events in a message.
const HeaderCount = "x-relay-event-count"

// ParseMessage reads an event message's body: a JSON array of events. It
// fails for a version it does not know, or an event without id or type.
// It reads the body as json.Unmarshal would (see codec.go).
func ParseMessage(body []byte) ([]Event, error) {
	return AppendMessageEvents(nil, body)
}

// AppendMessageEvents is ParseMessage appending the events to dst; on an
// error it returns dst as it was.
func AppendMessageEvents(dst []Event, body []byte) ([]Event, error) {
	evs, ok := decodeMessage(dst, body)
	if !ok {
		evs, err := parseMessageJSON(body) // not the JSON AppendEvent writes
		switch {
		case err != nil:
			return dst, err
		case dst == nil:
			return evs, nil // an empty array: empty, not nil
		}
		return append(dst, evs...), nil
	}
	if err := checkEvents(evs[len(dst):]); err != nil {
		return dst, err
	}
	return evs, nil
}

// Parse reads one event's JSON (as stored by the index), as json.Unmarshal
// would (see codec.go).
func Parse(b []byte) (Event, error) {
	var e Event
	if decodeEvent(b, &e) {
		return e, nil
	}
	return parseJSON(b) // not the JSON AppendEvent writes
}

// Publisher stores a message and returns nil only once the broker confirmed
// it; *broker.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// Emitter publishes events to the stream with confirms, batching the events
// of concurrent callers into few messages. The zero Emitter (or one with no
// stream: EVENTS=off) publishes nothing and reports success. It is safe for
// concurrent use, and starts no goroutine of its own: a caller whose events
// find fewer than maxFlushers publishes under way publishes them, with
// everything else waiting, and goes on while it is the last one publishing
// and more wait.
type Emitter struct {
	pub     Publisher
	stream  string
	source  string
	timeout time.Duration
	linger  time.Duration

	flushAt int           // a linger ends once this many callers wait; 0: only a full message ends it
	wake    chan struct{} // ends a linger early (flushAt reached, or a full message)

	mu        sync.Mutex
	pending   []*waiter
	pendingN  int // events in pending
	flushing  int
	lingering bool           // a flusher waits in its linger
	posted    sync.WaitGroup // flushers started by Post
}

// waiter is one caller's events: told the outcome on done (EmitAll) or
// through then (Post).
type waiter struct {
	evs  []Event
	done chan error
	then func(error)
}

func (w *waiter) tell(err error) {
	if w.then != nil {
		w.then(err)
		return
	}
	w.done <- err
}

// Batching: one message at a time is published (maxFlushers), of up to
// maxBatch events (~200 bytes each); the events that come while it awaits
// its confirm make the next one. A flusher may also gather events for a
// linger (DefaultLinger, or SetLinger) before each message it publishes,
// which ends early once a whole message's worth waits, or SetFlushAt's
// number of callers. The broker's work is per
// message and above all per chunk of the stream (what reaches the stream
// while it is busy writing: one message at a time is one chunk each), so a
// message of 20 events costs it about what one of one does: measured, one
// message at a time without a linger cost the forwarder 20 % less CPU and
// the broker 20 % less per registration than two at a time with 1 ms
// (docs/BENCHMARKS.md, "Event cost"). Nobody waits on the batching but the
// events' confirm (the ingress answers before it, the forwarder's workers
// go on with their next delivery; a delivery's ack waits for it, holding a
// prefetch slot).
const (
	maxFlushers = 1
	maxBatch    = 256
	// DefaultLinger is the linger of an Emitter whose owner sets none
	// (pkg/deadletter: redrive and purge events; tests). The services set their
	// own: the ingress 100 ms (INGRESS_EVENTS_LINGER: nobody waits for its
	// accepted events), the forwarder 20 ms (FORWARDER_EVENTS_LINGER: its
	// acks wait for their events' confirms, holding prefetch slots).
	DefaultLinger = 5 * time.Millisecond
)

// NewEmitter returns an Emitter publishing to stream (through the default
// exchange) as source, each message waiting at most timeout for its
// confirm; stream "" turns it off.
func NewEmitter(pub Publisher, stream, source string, timeout time.Duration) *Emitter {
	return &Emitter{pub: pub, stream: stream, source: source, timeout: timeout, linger: DefaultLinger, wake: make(chan struct{}, 1)}
}

// SetFlushAt ends a linger as soon as n callers' events wait (0: only when
// a whole message's worth does); call it before the first Emit. It returns
// e. The forwarder, each of whose delivered messages holds a prefetch slot
// until its events are confirmed, sets a share of its prefetch: under a
// high rate the linger then costs the slots little, while at a moderate
// one it still gathers large messages.
func (e *Emitter) SetFlushAt(n int) *Emitter {
	if e != nil {
		e.flushAt = n
	}
	return e
}

// SetLinger sets how long a flusher gathers events before it publishes
// them; call it before the first Emit. It returns e.
func (e *Emitter) SetLinger(d time.Duration) *Emitter {
	if e != nil {
		e.linger = d
	}
	return e
}

// On reports whether events are published.
func (e *Emitter) On() bool { return e != nil && e.stream != "" && e.pub != nil }

// Emit publishes ev and waits for its confirm, or ctx.
func (e *Emitter) Emit(ctx context.Context, ev Event) error { return e.EmitAll(ctx, ev) }

// EmitAll publishes evs (in one message, possibly with other callers'
// events) and waits for the confirm, or ctx: the error is nil only when
// the broker stored all of them. It sets V, Source and, when zero, At.
func (e *Emitter) EmitAll(ctx context.Context, evs ...Event) error {
	if !e.On() || len(evs) == 0 {
		return nil
	}
	w := &waiter{evs: e.stamp(evs), done: make(chan error, 1)}
	if e.add(w) {
		e.flush()
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("publish events: %w", ctx.Err())
	}
}

// Post publishes ev without waiting for it: then (which may be nil) is
// told the outcome, from another goroutine, once the broker confirmed ev or
// the publish failed. Wait waits for every posted event's outcome. Post is
// for events nobody waits on (the ingress's accepted events): it costs
// its caller no goroutine and no channel.
func (e *Emitter) Post(ev Event, then func(error)) { e.PostAll([]Event{ev}, then) }

// PostAll is Post of several events, published in one message. It takes
// evs (their V, Source and At are set in place).
func (e *Emitter) PostAll(evs []Event, then func(error)) {
	if !e.On() || len(evs) == 0 {
		if then != nil {
			then(nil)
		}
		return
	}
	if then == nil {
		then = func(error) {}
	}
	w := &waiter{evs: e.stamp(evs), then: then}
	if e.add(w) {
		e.posted.Go(e.flush)
	}
}

// Wait returns once every event Post took has its outcome.
func (e *Emitter) Wait() {
	if e != nil {
		e.posted.Wait()
	}
}

// stamp sets V, Source and, when zero, At of evs (in place) and returns
// them.
func (e *Emitter) stamp(evs []Event) []Event {
	now := time.Now().UTC()
	for i := range evs {
		ev := &evs[i]
		ev.V = Version
		if ev.Source == "" {
			ev.Source = e.source
		}
		if ev.At.IsZero() {
			ev.At = now
		}
		ev.At = ev.At.UTC()
	}
	return evs
}

// add queues w and reports whether the caller is to flush (fewer than
// maxFlushers are under way).
func (e *Emitter) add(w *waiter) (lead bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = append(e.pending, w)
	e.pendingN += len(w.evs)
	lead = e.flushing < maxFlushers
	if lead {
		e.flushing++
	}
	if e.lingering && e.fullLocked() {
		select {
		case e.wake <- struct{}{}:
		default: // already woken
		}
	}
	return lead
}

// flush publishes pending events, a batch at a time, until none wait or
// another flusher remains to publish them.
func (e *Emitter) flush() {
	e.mu.Lock()
	for len(e.pending) > 0 {
		if e.linger > 0 && !e.fullLocked() {
			// Gather before every message, not only the first: under
			// steady load one flusher publishes message after message,
			// and each message is a chunk of the stream, which the broker
			// pays for whatever it holds (see Batching). add ends the
			// linger early once the message would be full (fullLocked).
			select {
			case <-e.wake: // a wake-up meant for an earlier linger
			default:
			}
			e.lingering = true
			e.mu.Unlock()
			t := time.NewTimer(e.linger)
			select {
			case <-t.C:
			case <-e.wake:
				t.Stop()
			}
			e.mu.Lock()
			e.lingering = false
		}
		var batch []*waiter
		n := 0
		for len(e.pending) > 0 && (n == 0 || n+len(e.pending[0].evs) <= maxBatch) {
			n += len(e.pending[0].evs)
			e.pendingN -= len(e.pending[0].evs)
			batch = append(batch, e.pending[0])
			e.pending[0] = nil
			e.pending = e.pending[1:]
		}
		e.mu.Unlock()
		evs := make([]Event, 0, n)
		for _, w := range batch {
			evs = append(evs, w.evs...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		err := e.pub.Publish(ctx, "", e.stream, Message(evs))
		cancel()
		if err != nil {
			err = fmt.Errorf("publish %d events: %w", len(evs), err)
		}
		for _, w := range batch {
			w.tell(err)
		}
		e.mu.Lock()
		if e.flushing > 1 {
			break // another flusher is under way: it takes what waits
		}
	}
	e.flushing--
	e.mu.Unlock()
}

// fullLocked reports whether a whole message's worth of events waits
// already, or flushAt callers: then lingering would only let them pile up,
// or hold the forwarder's prefetch slots. e.mu must be held.
func (e *Emitter) fullLocked() bool {
	return e.pendingN >= maxBatch || (e.flushAt > 0 && len(e.pending) >= e.flushAt)
}

// Ms returns d in whole milliseconds, for DurationMS.
func Ms(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
}

// TimePtr returns &t, or nil for the zero time.
func TimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
