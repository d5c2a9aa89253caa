package forwarder

import (
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/delivery"
)

// Action is what happens to a message after an attempt.
type Action int

// Actions.
const (
	// Ack: delivered; the message is done.
	Ack Action = iota
	// Retry: a counted failure with attempts left: to a retry tier.
	Retry
	// DeadLetter: no attempt will succeed, or none is left: to the dead-letter queue.
	DeadLetter
	// Hold: the attempt is not counted; the worker keeps the message and tries
	// again when the breaker allows (or hands it back to the queue).
	Hold
)

var actionNames = [...]string{"ack", "retry", "dead-letter", "hold"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "unknown"
	}
	return actionNames[a]
}

// Verdict is everything one attempt's result decides.
type Verdict struct {
	Action Action
	// Health is what the result tells the breaker about the backend.
	Health breaker.Failure
	// Reason is the dead-letter reason (an envelope.Reason* constant) when
	// Action is DeadLetter.
	Reason string
	// Cause, when set, says what is wrong for the log and the breaker (whose
	// pause line shows it), in place of the attempt's error.
	Cause string
}

// Causes of a Verdict: the backend's 401 or 403 is relay's configuration
// problem, and the log must say where to look.
const (
	CauseUnauthorized = "backend refused relay's credentials (401): check CATERING_SIGNING_SECRET / client certificate"
	CauseForbidden    = "backend refused relay's credentials (403): check CATERING_SIGNING_SECRET / client certificate"
)

// Policy holds the settings the decision depends on.
type Policy struct {
	MaxAttempts  int          // MAX_DELIVERY_ATTEMPTS
	NonRetryable map[int]bool // NON_RETRY_STATUS_CODES; only 4xx and 5xx are looked up
}

// Decide is relay's whole delivery policy: what the result of attempt number
// attempt (1-based) means for the message and for the breaker. probe says
// whether the attempt was the breaker's probe. It is a pure function;
// TestDecide lists every row of its table.
//
// Delivered means a complete 2xx answer to our POST, nothing else: redirects
// are never followed, and a 2xx cut short or given before the request was
// sent whole is incomplete (package delivery sorts results into kinds).
//
//	result                              backend health  counted  action
//	answered 2xx                        healthy         yes      ack
//	answered 401 or 403                 refused         no       hold: relay's credentials (signature,
//	                                                             client certificate, password) are
//	                                                             wrong, not the message; a run of
//	                                                             them opens the breaker like an outage
//	answered 4xx in NonRetryable        healthy         yes      dead-letter (non-retryable)
//	answered 408 or 429                 failed          yes      retry
//	answered other 4xx                  healthy         yes      retry
//	answered 5xx in NonRetryable        failed          yes      dead-letter (non-retryable)
//	answered other 5xx                  failed          yes      retry
//	answered 3xx (not followed)         failed          yes      retry: a backend that redirects
//	answered 1xx as final (101)         failed          yes      retry  everything is misconfigured:
//	                                                             it opens the breaker like an outage
//	incomplete answer                   failed          yes      retry
//	timed out                           failed          yes      retry
//	unreachable (refused, reset, DNS)   unreachable     no       hold
//	unsendable (id not a header value)  healthy         no       dead-letter (invalid-message) at once
//	panicked (relay's bug)              healthy         yes      retry
//
// Then, in this order:
//   - 401 and 403 are never dead-lettered, whatever NonRetryable says (the
//     configuration refuses them there) and however many attempts were made;
//   - a probe whose result is not healthy is not counted: hold (the breaker
//     stays open and the message keeps its attempts);
//   - a counted failure that would retry on the last attempt (attempt >=
//     MaxAttempts) is dead-lettered instead (max-attempts).
func (p Policy) Decide(r delivery.Result, attempt int, probe bool) Verdict {
	kind := r.Kind()
	health := healthOf(kind, r.Status)
	switch {
	case kind == delivery.Unsendable:
		return Verdict{Action: DeadLetter, Health: health, Reason: envelope.ReasonInvalidMessage}
	case health == breaker.Refused:
		cause := CauseUnauthorized
		if r.Status == 403 {
			cause = CauseForbidden
		}
		return Verdict{Action: Hold, Health: health, Cause: cause}
	case health == breaker.Unreachable, probe && health != breaker.None:
		return Verdict{Action: Hold, Health: health}
	case kind == delivery.Answered && r.Err == nil && r.Status >= 200 && r.Status <= 299:
		return Verdict{Action: Ack, Health: health}
	case kind == delivery.Answered && r.Status >= 400 && p.NonRetryable[r.Status]:
		return Verdict{Action: DeadLetter, Health: health, Reason: envelope.ReasonNonRetryable}
	case attempt >= p.MaxAttempts:
		return Verdict{Action: DeadLetter, Health: health, Reason: envelope.ReasonMaxAttempts}
	}
	return Verdict{Action: Retry, Health: health}
}

// healthOf says what a result tells about the backend's health.
func healthOf(kind delivery.Kind, status int) breaker.Failure {
	switch kind {
	case delivery.Unreachable:
		return breaker.Unreachable
	case delivery.TimedOut, delivery.Incomplete:
		return breaker.Failed
	case delivery.Unsendable, delivery.Panicked:
		return breaker.None // the message's problem (or ours), no news about the backend
	}
	switch {
	case status == 401, status == 403:
		return breaker.Refused // not the message's fault: a configuration problem of relay's
	case status == 408, status == 429:
		return breaker.Failed // overloaded or too slow: a run of them pauses delivery rather than spending attempts
	case status >= 200 && status <= 299, status >= 400 && status <= 499:
		return breaker.None
	}
	return breaker.Failed // 1xx, 3xx, 5xx: answering but not serving
}
