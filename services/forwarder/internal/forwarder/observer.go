package forwarder

import "time"

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
}

type nopObserver struct{}

func (nopObserver) Attempted(int, time.Duration) {}
func (nopObserver) Outcome(string)               {}
func (nopObserver) Delivered(time.Duration)      {}
func (nopObserver) DeadLettered(string)          {}
