package forwarder_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/config"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
)

// Results of every kind, as the delivery client and the forwarder make them.
var (
	answered = func(status int) delivery.Result {
		if status >= 200 && status <= 299 {
			return delivery.Result{Status: status}
		}
		return delivery.Result{Status: status, Err: &delivery.StatusError{Code: status}}
	}
	redirected = delivery.Result{Status: 302, Location: "https://elsewhere.example/", Err: &delivery.StatusError{Code: 302, Location: "https://elsewhere.example/"}}
	cutShort   = delivery.Result{Status: 200, Err: &delivery.IncompleteError{Status: 200, Cause: "answer cut short", Err: io.ErrUnexpectedEOF}}
	early      = delivery.Result{Status: 200, Err: &delivery.IncompleteError{Status: 200, Cause: "answered before the request was sent whole", Err: syscall.EPIPE}}
	timedOut   = delivery.Result{Err: fmt.Errorf("Post: %w", context.DeadlineExceeded)}
	refused    = delivery.Result{Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	unsendable = delivery.Result{Err: &delivery.UnsendableError{Reason: "message id is not a valid HTTP header value"}}
	panicked   = delivery.Result{Err: &delivery.PanicError{Value: "bug"}}
)

// TestDecide lists every row of the delivery policy: result kind × probe ×
// attempts left. MaxAttempts is 4; attempt 2 has attempts left, 4 is the last.
func TestDecide(t *testing.T) {
	// 401 and 403 are listed as non-retryable here although the
	// configuration refuses them: Decide holds them anyway.
	p := forwarder.Policy{MaxAttempts: 4, NonRetryable: map[int]bool{422: true, 501: true, 302: true, 401: true, 403: true}}
	var (
		ack         = forwarder.Verdict{Action: forwarder.Ack, Health: breaker.None}
		retryOK     = forwarder.Verdict{Action: forwarder.Retry, Health: breaker.None}
		retryFailed = forwarder.Verdict{Action: forwarder.Retry, Health: breaker.Failed}
		holdFailed  = forwarder.Verdict{Action: forwarder.Hold, Health: breaker.Failed}
		holdDown    = forwarder.Verdict{Action: forwarder.Hold, Health: breaker.Unreachable}
		hold401     = forwarder.Verdict{Action: forwarder.Hold, Health: breaker.Refused, Cause: forwarder.CauseUnauthorized}
		hold403     = forwarder.Verdict{Action: forwarder.Hold, Health: breaker.Refused, Cause: forwarder.CauseForbidden}
		dead        = func(h breaker.Failure, reason string) forwarder.Verdict {
			return forwarder.Verdict{Action: forwarder.DeadLetter, Health: h, Reason: reason}
		}
		maxOK      = dead(breaker.None, envelope.ReasonMaxAttempts)
		maxFailed  = dead(breaker.Failed, envelope.ReasonMaxAttempts)
		nonRetryOK = dead(breaker.None, envelope.ReasonNonRetryable)
		invalid    = dead(breaker.None, envelope.ReasonInvalidMessage)
	)
	tests := []struct {
		name    string
		res     delivery.Result
		kind    delivery.Kind
		attempt int
		probe   bool
		want    forwarder.Verdict
	}{
		// A complete 2xx: delivered, whatever the attempt, probe or not.
		{"200", answered(200), delivery.Answered, 2, false, ack},
		{"204 on the last attempt", answered(204), delivery.Answered, 4, false, ack},
		{"202 as probe", answered(202), delivery.Answered, 2, true, ack},
		// A 2xx that does not count as one.
		{"200 cut short", cutShort, delivery.Incomplete, 2, false, retryFailed},
		{"200 cut short, last attempt", cutShort, delivery.Incomplete, 4, false, maxFailed},
		{"200 cut short, probe", cutShort, delivery.Incomplete, 2, true, holdFailed},
		{"200 before the request was sent", early, delivery.Incomplete, 2, false, retryFailed},
		{"200 before the request was sent, probe", early, delivery.Incomplete, 2, true, holdFailed},
		// 1xx as the final answer (101 to a POST): misconfigured.
		{"101", answered(101), delivery.Answered, 2, false, retryFailed},
		{"101, last attempt", answered(101), delivery.Answered, 4, false, maxFailed},
		{"101, probe", answered(101), delivery.Answered, 2, true, holdFailed},
		// 3xx: never followed, a failure that tells of a misconfigured backend,
		// even when listed as non-retryable (302 is, here).
		{"302", redirected, delivery.Answered, 2, false, retryFailed},
		{"307", answered(307), delivery.Answered, 2, false, retryFailed},
		{"302, last attempt", redirected, delivery.Answered, 4, false, maxFailed},
		{"302, probe", redirected, delivery.Answered, 2, true, holdFailed},
		// 401, 403: the backend refused relay's credentials: relay's
		// configuration problem, not the message's. Never counted, never
		// dead-lettered (even listed as non-retryable, even on the last
		// attempt); a run of them opens the breaker.
		{"401", answered(401), delivery.Answered, 1, false, hold401},
		{"401, last attempt", answered(401), delivery.Answered, 4, false, hold401},
		{"401, past the last attempt", answered(401), delivery.Answered, 9, false, hold401},
		{"401, probe", answered(401), delivery.Answered, 2, true, hold401},
		{"403", answered(403), delivery.Answered, 2, false, hold403},
		{"403, last attempt", answered(403), delivery.Answered, 4, false, hold403},
		{"403, probe", answered(403), delivery.Answered, 2, true, hold403},
		// 4xx: the message's problem; the backend is well.
		{"422 non-retryable", answered(422), delivery.Answered, 2, false, nonRetryOK},
		{"422 non-retryable, first attempt", answered(422), delivery.Answered, 1, false, nonRetryOK},
		{"422 non-retryable, probe", answered(422), delivery.Answered, 2, true, nonRetryOK},
		{"409 retryable", answered(409), delivery.Answered, 2, false, retryOK},
		{"402 retryable, last attempt", answered(402), delivery.Answered, 4, false, maxOK},
		{"409 retryable, probe", answered(409), delivery.Answered, 2, true, retryOK},
		// 408, 429: the backend is overloaded or slow; a run of them pauses.
		{"429", answered(429), delivery.Answered, 2, false, retryFailed},
		{"408, last attempt", answered(408), delivery.Answered, 4, false, maxFailed},
		{"429, probe", answered(429), delivery.Answered, 2, true, holdFailed},
		// A 2xx status with an error is no delivery, whatever made it.
		{"200 with an error", delivery.Result{Status: 200, Err: errors.New("odd")}, delivery.Answered, 2, false, retryOK},
		// 5xx: the backend is unwell.
		{"500", answered(500), delivery.Answered, 2, false, retryFailed},
		{"503, last attempt", answered(503), delivery.Answered, 4, false, maxFailed},
		{"500, probe", answered(500), delivery.Answered, 2, true, holdFailed},
		{"501 non-retryable", answered(501), delivery.Answered, 2, false, dead(breaker.Failed, envelope.ReasonNonRetryable)},
		{"501 non-retryable, probe", answered(501), delivery.Answered, 2, true, holdFailed},
		// No answer in time.
		{"timeout", timedOut, delivery.TimedOut, 2, false, retryFailed},
		{"timeout, last attempt", timedOut, delivery.TimedOut, 4, false, maxFailed},
		{"timeout, probe", timedOut, delivery.TimedOut, 2, true, holdFailed},
		// No answer at all: an outage; never counted.
		{"refused", refused, delivery.Unreachable, 2, false, holdDown},
		{"refused, last attempt", refused, delivery.Unreachable, 4, false, holdDown},
		{"refused, probe", refused, delivery.Unreachable, 2, true, holdDown},
		// The message cannot be sent at all: dead at once.
		{"unsendable", unsendable, delivery.Unsendable, 1, false, invalid},
		{"unsendable, probe", unsendable, delivery.Unsendable, 1, true, invalid},
		// Our own bug: a counted failure, no news about the backend.
		{"panic", panicked, delivery.Panicked, 2, false, retryOK},
		{"panic, last attempt", panicked, delivery.Panicked, 4, false, maxOK},
		{"panic, probe", panicked, delivery.Panicked, 2, true, retryOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k := tt.res.Kind(); k != tt.kind {
				t.Fatalf("Kind() = %v, want %v", k, tt.kind)
			}
			if got := p.Decide(tt.res, tt.attempt, tt.probe); got != tt.want {
				t.Errorf("Decide(attempt %d, probe %v) = %+v, want %+v", tt.attempt, tt.probe, got, tt.want)
			}
		})
	}
}

func TestDecide_ConfigDefaultsAreNonRetryable(t *testing.T) {
	set := map[int]bool{}
	for _, c := range config.DefaultNonRetryable {
		set[c] = true
	}
	p := forwarder.Policy{MaxAttempts: 4, NonRetryable: set}
	for _, c := range []int{400, 404, 405, 409, 410, 413, 415, 422} {
		if got := p.Decide(answered(c), 1, false); got.Action != forwarder.DeadLetter || got.Reason != envelope.ReasonNonRetryable {
			t.Errorf("status %d: %+v, want dead-lettered as non-retryable", c, got)
		}
	}
	for _, c := range []int{401, 403} {
		if got := p.Decide(answered(c), 1, false); got.Action != forwarder.Hold {
			t.Errorf("status %d: %+v, want held", c, got)
		}
	}
}

// A transport error that wraps a deadline deep down is still a timeout, and
// one with a status is an answer.
func TestResultKind_Wrapped(t *testing.T) {
	if k := (delivery.Result{Err: errors.Join(errors.New("x"), context.DeadlineExceeded)}).Kind(); k != delivery.TimedOut {
		t.Errorf("wrapped deadline: %v", k)
	}
	if k := (delivery.Result{Status: 503, Err: context.DeadlineExceeded}).Kind(); k != delivery.Answered {
		t.Errorf("503 with an error: %v", k)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := forwarder.Policy{MaxAttempts: 4, NonRetryable: map[int]bool{422: true}}
	results := []delivery.Result{answered(200), answered(500), answered(422), redirected, refused, cutShort}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = p.Decide(results[i%len(results)], 2, false)
	}
}
