package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publish outcomes other than success. All of them mean "not stored": the
// caller must not report the message as accepted.
var (
	// ErrUnavailable: no connection to the broker, or the connection is blocked.
	ErrUnavailable = errors.New("broker unavailable")
	// ErrNotConfirmed: the channel closed before the broker confirmed.
	ErrNotConfirmed = errors.New("publish not confirmed by broker")
	// ErrNacked: the broker refused to store the message.
	ErrNacked = errors.New("publish refused by broker (nack)")
	// ErrUnroutable: no queue is bound for the routing key (mandatory return).
	ErrUnroutable = errors.New("message unroutable: no queue bound for it")
)

// HeaderPublishSeq is the header in which earlier versions sent every
// message's publish sequence number, to match a mandatory return to its
// publish. Publish no longer sets it (returns are matched by message id, see
// confirmChannel.loop): messages stored by those versions may still carry it,
// and readers drop it.
const HeaderPublishSeq = "x-relay-publish-seq"

// Publisher publishes with confirms over a set of channels that it opens on
// each connection handed to Attach. It is safe for concurrent use; Publish
// fails fast with ErrUnavailable while no connection is attached.
type Publisher struct {
	channels int

	mu       sync.RWMutex
	set      []*confirmChannel
	conn     *amqp.Connection // set's, for a channel that replaces one
	onBroken func()           // closes broken, once
	broken   chan struct{}    // closed when a channel of set closes
	attached chan struct{}    // closed while a set is attached
	next     atomic.Uint64
	blocked  atomic.Bool

	onReplaced func(error) // SetOnReplaced's
}

// SetOnReplaced has f told each time a channel is replaced because a
// publish on it went unconfirmed (nil), or could not be (the error; the
// attachment is then broken); for a log line. Call it before Attach. f is
// called from a goroutine of its own and must not block for long.
func (p *Publisher) SetOnReplaced(f func(error)) { p.onReplaced = f }

// NewPublisher returns a Publisher that opens channels channels per connection.
// One channel already pipelines thousands of confirms; a few more spread
// frame encoding over cores.
func NewPublisher(channels int) *Publisher {
	return &Publisher{channels: max(channels, 1), attached: make(chan struct{})}
}

// Attach opens the publishing channels on conn. Call Detach before attaching
// to another connection.
func (p *Publisher) Attach(conn *amqp.Connection) error {
	p.mu.RLock()
	attached := p.set != nil
	p.mu.RUnlock()
	if attached {
		return errors.New("publisher already attached: Detach first")
	}
	set := make([]*confirmChannel, 0, p.channels)
	broken := make(chan struct{})
	var once sync.Once
	onBroken := func() { once.Do(func() { close(broken) }) }
	for range p.channels {
		c, err := openConfirmChannel(conn, onBroken)
		if err != nil {
			for _, c := range set {
				c.close()
			}
			return err
		}
		set = append(set, c)
	}
	p.mu.Lock()
	p.set, p.broken, p.conn, p.onBroken = set, broken, conn, onBroken
	close(p.attached)
	p.mu.Unlock()
	return nil
}

// WaitAttached waits until channels are attached and returns the Broken
// channel of that attachment, which closes when it breaks or is detached; or
// ctx's error. A consumer on another connection uses it to consume only while
// it can move what it consumes.
func (p *Publisher) WaitAttached(ctx context.Context) (broken <-chan struct{}, err error) {
	for {
		p.mu.RLock()
		attached, b := p.attached, p.broken
		p.mu.RUnlock()
		if b == nil || !isClosed(attached) {
			select {
			case <-attached:
				continue // read the attachment's broken channel, under the lock
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-b:
			// Broken but not yet detached: its session is ending. Detach
			// signals nothing, so look again shortly.
			t := time.NewTimer(brokenRecheck)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		default:
			return b, nil
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// brokenRecheck is how soon WaitAttached looks again at a broken attachment.
const brokenRecheck = 50 * time.Millisecond

// Broken is closed when the topology or a channel opened by the last Attach
// turns out to be damaged while the connection stays up: the broker closed a
// channel (a publish to a deleted exchange, say) or returned a message as
// unroutable (a binding or queue deleted). The session should then end, so the
// next one redeclares the topology on fresh channels. Before Attach it never
// closes.
func (p *Publisher) Broken() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.broken
}

// Detach closes the channels. Publishes still waiting for a confirm fail with
// ErrNotConfirmed.
func (p *Publisher) Detach() {
	p.mu.Lock()
	set := p.set
	p.set, p.conn, p.onBroken = nil, nil, nil
	select {
	case <-p.attached:
		p.attached = make(chan struct{})
	default:
	}
	p.mu.Unlock()
	for _, c := range set {
		c.close()
	}
}

// SetBlocked marks the connection as blocked by a broker resource alarm:
// publishing would hang, so Publish fails fast instead.
func (p *Publisher) SetBlocked(blocked bool) { p.blocked.Store(blocked) }

// Blocked reports whether the broker has blocked the connection.
func (p *Publisher) Blocked() bool { return p.blocked.Load() }

// Ready reports whether Publish can currently succeed.
func (p *Publisher) Ready() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.set) > 0 && !p.blocked.Load()
}

// Publish sends msg as a mandatory publish and waits until the broker
// confirmed it or ctx ends. It returns nil only when the message is stored in
// at least one queue. A ctx that ends first gives an error: the message may or
// may not be stored, so the caller must treat it as not stored (and may
// publish again, which can duplicate it). A ctx whose deadline passes while
// no resource alarm blocks the connection also has the channel replaced
// (replace): give it the time a confirm may take (PUBLISH_TIMEOUT), not less.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if p.blocked.Load() {
		return fmt.Errorf("%w: connection blocked by a broker resource alarm", ErrUnavailable)
	}
	p.mu.RLock()
	var c *confirmChannel
	if n := len(p.set); n > 0 {
		c = p.set[p.next.Add(1)%uint64(n)]
	}
	p.mu.RUnlock()
	if c == nil {
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	}

	result, err := c.publish(ctx, exchange, key, msg)
	if err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !p.blocked.Load() {
			go p.replace(c)
			return fmt.Errorf("%w: %w (no resource alarm: its channel is replaced)", ErrNotConfirmed, ctx.Err())
		}
		return fmt.Errorf("%w: %w", ErrNotConfirmed, ctx.Err())
	}
}

// replace puts a new channel on the same connection in the place of c, a
// channel on which a publish went unconfirmed for its caller's whole
// deadline while no resource alarm explained it, and closes c: its
// publishes still waiting fail as unconfirmed. RabbitMQ 3.10 can stop
// confirming on a channel opened while a cluster node was down, even once
// the node is back, while a new channel's publishes are confirmed (the
// cluster suite saw a forwarder's event publishes never confirmed). Only
// the channel is replaced, not the session: a node that is merely slow or
// hung (a queue's leader on it) also leaves publishes unconfirmed, and a
// new session would then wait in its topology declaration instead of
// publishing. A channel that cannot be opened breaks the attachment.
func (p *Publisher) replace(c *confirmChannel) {
	if !c.retired.CompareAndSwap(false, true) {
		return // another of its publishes did it
	}
	p.mu.RLock()
	conn, onBroken, attached := p.conn, p.onBroken, slices.Contains(p.set, c)
	p.mu.RUnlock()
	if !attached {
		return // detached meanwhile: Detach closes it
	}
	nc, err := openConfirmChannel(conn, onBroken)
	if err != nil {
		onBroken()
		p.replaced(fmt.Errorf("replace a channel that did not confirm: %w", err))
		return
	}
	p.mu.Lock()
	i := slices.Index(p.set, c)
	if i >= 0 {
		p.set[i] = nc
	}
	p.mu.Unlock()
	if i < 0 { // detached while the channel opened
		nc.close()
		return
	}
	c.close()
	p.replaced(nil)
}

// LogReplaced is a SetOnReplaced function that logs each replacement to
// log, naming what the publisher publishes.
func LogReplaced(log *slog.Logger, what string) func(error) {
	return func(err error) {
		if err != nil {
			log.Warn("a publishing channel did not confirm within its timeout and could not be replaced: starting a new session", "publishes", what, "err", err)
			return
		}
		log.Warn("a publishing channel did not confirm within its timeout, with no resource alarm: replaced by a new one", "publishes", what)
	}
}

func (p *Publisher) replaced(err error) {
	if p.onReplaced != nil {
		p.onReplaced(err)
	}
}

// confirmChannel is one channel in confirm mode plus the goroutine that
// matches confirms and returns to waiting publishers.
type confirmChannel struct {
	ch *amqp.Channel

	publishMu sync.Mutex // held while taking a sequence number and writing the frames

	pendingMu sync.Mutex
	pending   map[uint64]pendingPublish
	closed    bool
	done      chan struct{}
	onBroken  func()
	retired   atomic.Bool // replaced: its closing breaks nothing
}

func openConfirmChannel(conn *amqp.Connection, onBroken func()) (*confirmChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publish channel: %w", err)
	}
	if err := ch.Confirm(false /* noWait */); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	c := &confirmChannel{ch: ch, pending: map[uint64]pendingPublish{}, done: make(chan struct{}), onBroken: onBroken}
	// Unbuffered on purpose: the library hands both over from its single reader
	// goroutine, one after the other, and only an unbuffered hand-over keeps
	// their order for the loop: a message's return always comes before its ack.
	// The loop never blocks, so the reader never waits on it.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation))
	returns := ch.NotifyReturn(make(chan amqp.Return))
	go c.loop(confirms, returns)
	return c, nil
}

// pendingPublish is a publish waiting for its confirm.
type pendingPublish struct {
	result chan error
	id     string // its message id: a mandatory return names only that
}

func (c *confirmChannel) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (<-chan error, error) {
	result := make(chan error, 1)

	c.publishMu.Lock()
	defer c.publishMu.Unlock()
	seq := c.ch.GetNextPublishSeqNo()

	c.pendingMu.Lock()
	if c.closed {
		c.pendingMu.Unlock()
		return nil, fmt.Errorf("%w: channel closed", ErrUnavailable)
	}
	c.pending[seq] = pendingPublish{result: result, id: msg.MessageId}
	c.pendingMu.Unlock()

	if err := c.ch.PublishWithContext(ctx, exchange, key, true /* mandatory */, false /* immediate */, msg); err != nil {
		c.pendingMu.Lock()
		delete(c.pending, seq)
		c.pendingMu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return result, nil
}

// loop hands each confirm to its publish. A mandatory return (no queue bound
// for the message) carries no sequence number, only the message, so it marks
// every publish still waiting with the returned message's id: their confirms
// (the broker acks a returned message) then fail with ErrUnroutable. Two
// messages in flight with the same id on one channel (a client that retries
// with its Idempotency-Key before its first answer) may both fail, the
// routed one too: a 503 the client retries, never a false success. The
// broker sends a message's return before its confirm, and both arrive here
// in that order (see openConfirmChannel), so the mark is always in time.
//
// Returns happen only when the topology is damaged; matching them by id
// spares every message a header that only this loop needs (it used to
// travel with the message to every reader, HeaderPublishSeq).
func (c *confirmChannel) loop(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return) {
	defer close(c.done)
	returned := map[uint64]bool{}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			c.pendingMu.Lock()
			for seq, p := range c.pending {
				if p.id == r.MessageId {
					returned[seq] = true
				}
			}
			c.pendingMu.Unlock()
		case cf, ok := <-confirms:
			if !ok {
				c.failPending()
				if !c.retired.Load() {
					c.onBroken()
				}
				return
			}
			var err error
			switch {
			case !cf.Ack:
				err = ErrNacked
			case returned[cf.DeliveryTag]:
				err = ErrUnroutable
				c.onBroken()
			}
			delete(returned, cf.DeliveryTag)
			c.pendingMu.Lock()
			p := c.pending[cf.DeliveryTag]
			delete(c.pending, cf.DeliveryTag)
			c.pendingMu.Unlock()
			if p.result != nil {
				p.result <- err
			}
		}
	}
}

func (c *confirmChannel) failPending() {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	c.closed = true
	for seq, p := range c.pending {
		p.result <- ErrNotConfirmed
		delete(c.pending, seq)
	}
}

func (c *confirmChannel) close() {
	_ = c.ch.Close() // closing also closes the notify channels, which ends loop
	<-c.done
}
