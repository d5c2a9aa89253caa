// Package envelope defines how a registration travels through RabbitMQ: the
// AMQP properties and the x-relay-* headers that carry its id, its attempt
// count and, once dead, why it died.
//
// The attempt count lives in relay's own header, not in x-death: RabbitMQ 4.0
// stopped counting client republishes in x-death, and relay moves messages by
// republishing.
package envelope

import (
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Header names. They show in the RabbitMQ management UI and in relayctl.
const (
	HeaderAcceptedAt     = "x-relay-accepted-at"      // RFC 3339 time the ingress stored it
	HeaderAttempts       = "x-relay-attempts"         // delivery attempts made so far
	HeaderFirstAttemptAt = "x-relay-first-attempt-at" // RFC 3339
	HeaderLastAttemptAt  = "x-relay-last-attempt-at"  // RFC 3339
	HeaderLastStatus     = "x-relay-last-status"      // last HTTP status, 0 when there was none
	HeaderLastError      = "x-relay-last-error"       // at most MaxErrorLen bytes
	HeaderLastLocation   = "x-relay-last-location"    // the Location of the last attempt's 3xx answer (never followed)
	HeaderReason         = "x-relay-reason"           // why it was dead-lettered
	HeaderMessageID      = "x-relay-message-id"       // the original message id
	HeaderDeadAt         = "x-relay-dead-lettered-at" // RFC 3339
)

// Redrive headers. A redrive (relayctl dead redrive, or the forwarder's
// scheduled redrive) sends a dead letter back to the main queue without its
// attempt count and dead-letter headers; these keep its history. The
// previous-* headers describe the last death only, so they never grow.
const (
	HeaderRedriveCount       = "x-relay-redrive-count"             // times redriven so far
	HeaderRedrivenAt         = "x-relay-redriven-at"               // RFC 3339, the last redrive
	HeaderPreviousAttempts   = "x-relay-previous-attempts"         // attempts before the last redrive
	HeaderPreviousReason     = "x-relay-previous-reason"           // why it died before the last redrive
	HeaderPreviousLastStatus = "x-relay-previous-last-status"      // its last HTTP status then
	HeaderPreviousLastError  = "x-relay-previous-last-error"       // its last error then
	HeaderPreviousDeadAt     = "x-relay-previous-dead-lettered-at" // RFC 3339, when it died then
)

// Dead-letter reasons.
const (
	ReasonMaxAttempts      = "max-attempts"       // failed MaxAttempts times
	ReasonNonRetryable     = "non-retryable"      // the backend refused it for good (e.g. 422)
	ReasonRejectedByBroker = "rejected-by-broker" // the broker dead-lettered it (delivery limit) or refused a move
	ReasonInvalidMessage   = "invalid-message"    // it cannot be sent at all (its id is not a valid HTTP header value)
)

// ContentType of every registration.
const ContentType = "application/json"

// MaxErrorLen bounds HeaderLastError.
const MaxErrorLen = 1024

// New returns the persistent message the ingress publishes for a registration.
func New(id string, body []byte, acceptedAt time.Time) amqp.Publishing {
	return amqp.Publishing{
		MessageId:    id,
		ContentType:  ContentType,
		DeliveryMode: amqp.Persistent,
		Timestamp:    acceptedAt,
		Headers:      amqp.Table{HeaderAcceptedAt: acceptedAt.UTC().Format(time.RFC3339Nano)},
		Body:         body,
	}
}

// Attempt describes one delivery attempt.
type Attempt struct {
	Number   int       // 1-based
	At       time.Time // when it started
	Status   int       // HTTP status, 0 when no response arrived
	Err      string    // what went wrong, "" on success
	Location string    // a 3xx answer's Location, "" otherwise
}

// Meta is what the headers say about a message.
type Meta struct {
	ID             string
	Attempts       int
	AcceptedAt     time.Time
	FirstAttemptAt time.Time
	LastAttemptAt  time.Time
	LastStatus     int
	LastError      string
	Reason         string
	DeadAt         time.Time
	RedriveCount   int
}

// Read extracts Meta from a delivered message.
func Read(d amqp.Delivery) Meta {
	h := d.Headers
	m := Meta{
		ID:             d.MessageId,
		Attempts:       intHeader(h, HeaderAttempts),
		AcceptedAt:     timeHeader(h, HeaderAcceptedAt),
		FirstAttemptAt: timeHeader(h, HeaderFirstAttemptAt),
		LastAttemptAt:  timeHeader(h, HeaderLastAttemptAt),
		LastStatus:     intHeader(h, HeaderLastStatus),
		LastError:      stringHeader(h, HeaderLastError),
		Reason:         stringHeader(h, HeaderReason),
		DeadAt:         timeHeader(h, HeaderDeadAt),
		RedriveCount:   intHeader(h, HeaderRedriveCount),
	}
	if m.AcceptedAt.IsZero() {
		m.AcceptedAt = d.Timestamp
	}
	if m.Reason == "" && isBrokerDeadLetter(h) {
		m.Reason = ReasonRejectedByBroker
	}
	return m
}

// Retry returns the message to publish to a retry tier after failed attempt a.
func Retry(d amqp.Delivery, a Attempt) amqp.Publishing {
	return amqp.Publishing{
		MessageId:    d.MessageId,
		ContentType:  d.ContentType,
		DeliveryMode: amqp.Persistent,
		Timestamp:    d.Timestamp,
		Headers:      withAttempt(d.Headers, a),
		Body:         d.Body,
	}
}

// Requeue returns d unchanged for a trip back to the end of the main queue:
// same id, body and attempt count. The forwarder uses it to give back a message
// it held while the backend was down, without counting an attempt.
func Requeue(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{
		MessageId:    d.MessageId,
		ContentType:  d.ContentType,
		DeliveryMode: amqp.Persistent,
		Timestamp:    d.Timestamp,
		Headers:      withoutDeaths(d.Headers),
		Body:         d.Body,
	}
}

// Dead returns the message to publish to the dead-letter exchange after
// attempt a, the last one, annotated with reason.
func Dead(d amqp.Delivery, a Attempt, reason string, now time.Time) amqp.Publishing {
	p := Retry(d, a)
	p.Headers[HeaderReason] = reason
	p.Headers[HeaderMessageID] = d.MessageId
	p.Headers[HeaderDeadAt] = now.UTC().Format(time.RFC3339Nano)
	return p
}

// withoutDeaths copies headers without the broker's dead-lettering
// bookkeeping, which records every tier expiry and would grow with each retry;
// relay's own headers carry the history.
func withoutDeaths(in amqp.Table) amqp.Table {
	h := make(amqp.Table, len(in)+6)
	for k, v := range in {
		switch k {
		case "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason":
			continue
		}
		h[k] = v
	}
	return h
}

func withAttempt(in amqp.Table, a Attempt) amqp.Table {
	h := withoutDeaths(in)
	at := a.At.UTC().Format(time.RFC3339Nano)
	h[HeaderAttempts] = int32(a.Number)
	if _, ok := h[HeaderFirstAttemptAt]; !ok {
		h[HeaderFirstAttemptAt] = at
	}
	h[HeaderLastAttemptAt] = at
	h[HeaderLastStatus] = int32(a.Status)
	h[HeaderLastError] = Truncate(a.Err, MaxErrorLen)
	if a.Location != "" {
		h[HeaderLastLocation] = Truncate(a.Location, MaxErrorLen)
	} else {
		delete(h, HeaderLastLocation) // an earlier attempt's: no longer the last
	}
	return h
}

// Truncate shortens s to at most n bytes without splitting a UTF-8 character.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func isBrokerDeadLetter(h amqp.Table) bool {
	deaths, _ := h["x-death"].([]any)
	for _, d := range deaths {
		if t, ok := d.(amqp.Table); ok {
			switch t["reason"] {
			case "delivery_limit", "rejected", "maxlen":
				return true
			}
		}
	}
	return false
}

func intHeader(h amqp.Table, key string) int {
	switch v := h[key].(type) {
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case int:
		return v
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

func stringHeader(h amqp.Table, key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func timeHeader(h amqp.Table, key string) time.Time {
	v := stringHeader(h, key)
	if v == "" {
		return time.Time{} // most headers are absent on a first attempt: skip the parse and its error
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}
