package forwarder

import (
	"time"

	"github.com/railco/relay/services/forwarder/internal/delivery"
)

// Outcomes of handling a delivery, as logged (the outcome attribute) and as
// told to Observer.Outcome.
const (
	OutcomeDelivered       = "delivered"         // acked after a 2xx
	OutcomeRetry           = "retry"             // moved to a retry tier
	OutcomeDeadLettered    = "dead-lettered"     // moved to the dead-letter queue
	OutcomeNotCounted      = "not-counted"       // the backend was unreachable or a probe failed: held, tried again
	OutcomeReturnedToQueue = "returned-to-queue" // held too long (or shut down) with the breaker open: back to the main queue
	OutcomeRequeued        = "requeued"          // the move failed; the broker redelivers the message
)

// Outcomes lists every outcome.
var Outcomes = []string{OutcomeDelivered, OutcomeRetry, OutcomeDeadLettered, OutcomeNotCounted, OutcomeReturnedToQueue, OutcomeRequeued}

// Observer is told what happens to deliveries, for metrics. Every worker
// calls it, concurrently: implementations must be safe for concurrent use
// and must not block.
type Observer interface {
	// Attempted reports a counted attempt (one that ends in an outcome other
	// than not-counted): its 1-based number and how long the HTTP exchange took.
	Attempted(number int, took time.Duration)
	// Outcome reports how handling a delivery ended, or that an attempt was
	// not counted: one of Outcomes.
	Outcome(outcome string)
	// Delivered reports a message the backend took, with the time since the
	// ingress accepted it.
	Delivered(age time.Duration)
	// DeadLettered reports a message stored in the dead-letter queue, and why
	// (an envelope.Reason* constant).
	DeadLettered(reason string)
	// Result reports what every attempt, counted or not, got back: one of
	// Results.
	Result(result string)
}

// Results of an attempt, as told to Observer.Result: the class of the
// answer's status, or why there was no complete answer.
var Results = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "timeout", "unreachable", "incomplete", "unsendable", "panic"}

// resultLabel is the Results entry for r.
func resultLabel(r delivery.Result) string {
	switch r.Kind() {
	case delivery.Unreachable:
		return "unreachable"
	case delivery.TimedOut:
		return "timeout"
	case delivery.Incomplete:
		return "incomplete"
	case delivery.Unsendable:
		return "unsendable"
	case delivery.Panicked:
		return "panic"
	}
	switch c := r.Status / 100; {
	case c >= 1 && c <= 5:
		return Results[c-1]
	}
	return "5xx" // a status outside 1xx-5xx is a broken answer
}

type nopObserver struct{}

func (nopObserver) Attempted(int, time.Duration) {}
func (nopObserver) Outcome(string)               {}
func (nopObserver) Delivered(time.Duration)      {}
func (nopObserver) DeadLettered(string)          {}
func (nopObserver) Result(string)                {}
