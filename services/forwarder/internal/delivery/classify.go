package delivery

// Outcome is what to do with a message after an attempt.
type Outcome int

// Outcomes.
const (
	// Delivered: the backend took it; ack.
	Delivered Outcome = iota
	// Retry: a transient failure; try again later through a retry tier.
	Retry
	// Reject: the backend will never take it as it is; dead-letter now.
	Reject
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Reject:
		return "rejected"
	}
	return "unknown"
}

// Classify maps an attempt's result to an outcome. nonRetryable holds the
// statuses that dead-letter at once (NON_RETRY_STATUS_CODES).
//
// Everything not known to be permanent is retried: a transport error, a
// timeout, 408, 425, 429, every 5xx, and unlisted statuses. Retrying a
// permanent failure costs MAX_DELIVERY_ATTEMPTS tries; giving up on a
// transient one would lose a registration's chance to arrive.
func Classify(r Result, nonRetryable map[int]bool) Outcome {
	switch {
	case r.Status >= 200 && r.Status <= 299:
		return Delivered
	case nonRetryable[r.Status]:
		return Reject
	default:
		return Retry
	}
}
