// Package breaker pauses delivery while the Catering backend is down.
//
// Without it, an outage would spend every message's attempts and fill the
// dead-letter queue with registrations that only needed to wait. The breaker
// opens on evidence that the backend itself is down (not one bad message),
// holds every worker while it is open, lets one real delivery through as a
// probe at growing intervals, and closes as soon as a probe succeeds.
//
// Evidence of an outage is either a run of Threshold consecutive failures to
// reach the backend at all (refused, unresolvable, reset) or to be let in
// (401, 403: relay's credentials refused), or a share of at
// least FailureRate failed answers (5xx, timeouts) among the last Window
// answered attempts, spanning at least MinMessages different messages. A
// backend that fails some requests (20% 500s, say) keeps delivering, with the
// failures going through the retry tiers; one poison message failing again
// and again never opens it.
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// State is the breaker's position.
type State int

// States.
const (
	Closed   State = iota // delivering
	Open                  // paused until the next probe
	HalfOpen              // one probe in flight or about to be
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Failure classifies an attempt for the breaker.
type Failure int

// Failures.
const (
	None        Failure = iota // delivered, or refused for reasons of the message (4xx)
	Unreachable                // no answer at all: refused, unresolvable, reset
	Failed                     // an answer that says the backend is unwell: 5xx, timeout
	// Refused: the backend refused relay's credentials (401, 403). Like
	// Unreachable, a run of them opens the breaker: nothing gets through
	// until the configuration is fixed.
	Refused
)

// Options configure a Breaker.
type Options struct {
	Threshold     int           // consecutive Unreachable or Refused attempts that open it
	Window        int           // answered attempts the failure rate is taken over
	FailureRate   float64       // share of Failed in a full Window that opens it; 0 turns the rule off
	MinMessages   int           // distinct messages the Failed ones of the Window must span
	ProbeInterval time.Duration // wait before the first probe
	ProbeMax      time.Duration // longest wait between probes
	// OnChange, if set, is told every state change. It is called with the
	// breaker's lock held, so it must be quick and must not call the Breaker.
	OnChange func(State)
}

// Breaker is safe for concurrent use.
type Breaker struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	state    State
	run      int           // consecutive Unreachable or Refused attempts
	window   []answer      // the last answered attempts, a ring
	next     int           // where the next answer goes in window
	seen     int           // answers in window, up to its length
	failed   int           // Failed answers in window
	probing  bool          // a probe is out
	cause    string        // what opened it
	changed  chan struct{} // closed and replaced on every state change
	backoff  *backoff.ExponentialBackOff
	timer    *time.Timer
	openedAt time.Time
}

// New returns a closed Breaker.
// answer is one answered attempt in the failure-rate window.
type answer struct {
	id     string
	failed bool
}

func New(opts Options, log *slog.Logger) *Breaker {
	return &Breaker{
		opts:    opts,
		log:     log,
		window:  make([]answer, max(opts.Window, 0)),
		changed: make(chan struct{}),
		backoff: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(opts.ProbeInterval),
			backoff.WithMaxInterval(opts.ProbeMax),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(0.1),
			backoff.WithMaxElapsedTime(0),
		),
	}
}

// State returns the current state.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// ErrHoldExpired is returned by Acquire when the breaker stayed open longer
// than the caller was willing to hold its message.
var ErrHoldExpired = errors.New("breaker still open")

// Acquire waits until an attempt may be made: at once while closed; while
// open, until a probe is due and this caller is chosen to make it, or until
// another probe closed the breaker. probe is true for the chosen caller, who
// must Record its outcome. Acquire returns ctx's error when ctx ends and
// ErrHoldExpired when hold passes first (hold 0: no limit).
func (b *Breaker) Acquire(ctx context.Context, hold time.Duration) (probe bool, err error) {
	var expired <-chan time.Time
	if hold > 0 {
		t := time.NewTimer(hold)
		defer t.Stop()
		expired = t.C
	}
	for {
		b.mu.Lock()
		switch {
		case b.state == Closed:
			b.mu.Unlock()
			return false, nil
		case b.state == HalfOpen && !b.probing:
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return false, ctx.Err()
		case <-expired:
			return false, ErrHoldExpired
		}
	}
}

// Record reports the outcome of an attempt. id names the message; cause
// describes a failure for the log.
func (b *Breaker) Record(id string, f Failure, probe bool, cause string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		if f == None {
			b.log.Info("backend available again; resuming", "paused_for", time.Since(b.openedAt).Round(time.Millisecond).String())
			b.backoff.Reset()
			b.reset()
			b.setState(Closed)
			return
		}
		b.cause = cause
		b.open()
		return
	}
	if b.state != Closed {
		return // attempts that started before it opened, or a probe's rivals
	}
	switch f {
	case Unreachable, Refused:
		b.run++
		if b.run >= b.opts.Threshold {
			b.trip(cause)
		}
	case Failed:
		b.run = 0 // it answered: reachable
		b.remember(id, true)
		if b.failureRateExceeded() {
			b.trip(cause)
		}
	default:
		b.run = 0
		b.remember(id, false)
	}
}

func (b *Breaker) trip(cause string) {
	b.cause = cause
	b.openedAt = time.Now()
	b.open()
}

// remember puts an answer into the window, dropping the oldest.
func (b *Breaker) remember(id string, failed bool) {
	if len(b.window) == 0 {
		return
	}
	if old := b.window[b.next]; b.seen == len(b.window) && old.failed {
		b.failed--
	}
	b.window[b.next] = answer{id: id, failed: failed}
	b.next = (b.next + 1) % len(b.window)
	b.seen = min(b.seen+1, len(b.window))
	if failed {
		b.failed++
	}
}

func (b *Breaker) failureRateExceeded() bool {
	if b.opts.FailureRate <= 0 || b.seen < len(b.window) || float64(b.failed) < b.opts.FailureRate*float64(len(b.window)) {
		return false
	}
	ids := make(map[string]struct{}, b.opts.MinMessages)
	for _, a := range b.window {
		if a.failed {
			ids[a.id] = struct{}{}
		}
	}
	return len(ids) >= b.opts.MinMessages
}

func (b *Breaker) reset() {
	b.run, b.next, b.seen, b.failed = 0, 0, 0, 0
	clear(b.window)
}

// open pauses delivery and schedules the next probe. b.mu is held.
func (b *Breaker) open() {
	wait := b.backoff.NextBackOff()
	if b.state == Closed {
		b.log.Warn("catering backend unavailable: "+b.cause+"; pausing delivery; next probe in "+wait.Round(time.Millisecond).String(),
			"cause", b.cause, "next_probe_in", wait.String())
	} else {
		b.log.Info("probe failed; still paused", "cause", b.cause, "next_probe_in", wait.String())
	}
	b.setState(Open)
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = time.AfterFunc(wait, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.state == Open {
			b.setState(HalfOpen)
		}
	})
}

func (b *Breaker) setState(s State) {
	b.state = s
	close(b.changed)
	b.changed = make(chan struct{})
	if b.opts.OnChange != nil {
		b.opts.OnChange(s)
	}
}

// Stop cancels a pending probe timer.
func (b *Breaker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
}
