package events

import (
	"cmp"
	"slices"
	"time"
)

// Statuses of a registration (Registration.Status).
const (
	StatusAccepted  = "accepted"  // stored, waiting for its first attempt (or back in the main queue after a redrive)
	StatusRetrying  = "retrying"  // an attempt failed; it waits in a retry tier (NextAttemptAt)
	StatusHeld      = "held"      // the backend is down: held by the breaker, attempts not counted
	StatusDelivered = "delivered" // the backend took it
	StatusDead      = "dead"      // in the dead-letter queue (Reason)
	StatusPurged    = "purged"    // deleted from the dead-letter queue by an operator
)

// Registration is what relay knows of one registration: the JSON of
// GET /catering/registrations/{id} and relayctl trace --json.
type Registration struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	AcceptedAt     *time.Time `json:"accepted_at,omitempty"`
	Client         string     `json:"client,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	Reason         string     `json:"reason,omitempty"` // why it is dead (status dead or purged)
	DeadLetteredAt *time.Time `json:"dead_lettered_at,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"` // status retrying: when it leaves its retry tier
	Redrives       int        `json:"redrives,omitempty"`
	Attempts       []Attempt  `json:"attempts"`
	History        []Event    `json:"history"` // every event, in the order of the registration's life
}

// Attempt is one delivery attempt as Registration lists it.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	Redrive    int       `json:"redrive,omitempty"` // the redrive generation it belongs to
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	Outcome    string    `json:"outcome"`
	// Duplicate marks an attempt made again with the same number: the
	// forwarder died (or lost its channel) after the attempt and before it
	// settled the message, and the broker redelivered it.
	Duplicate bool `json:"duplicate,omitempty"`
	// Redelivered marks an attempt on a message the broker redelivered
	// because its consumer died unsettled. When that consumer died after
	// trying it and before its events were confirmed, that earlier try has
	// no event, and this flag is the trace of it (the backend dedupes on
	// the Idempotency-Key either way).
	Redelivered bool `json:"redelivered,omitempty"`
}

// phase orders the events of one attempt.
func phase(t string) int {
	switch t {
	case TypeAccepted, TypeRedriven:
		return 0
	case TypeHeld:
		return 1
	case TypeAttempt:
		return 2
	case TypeRetryScheduled, TypeDelivered, TypeDeadLettered:
		return 3
	case TypePurged:
		return 4
	}
	return -1
}

// Rank compares two events of one registration by their place in its
// life: redrive generation, then attempt number, then step. The status is
// the one the highest-ranked status-bearing event says (StatusOf).
func Rank(a, b Event) int {
	return cmp.Or(cmp.Compare(a.Redrive, b.Redrive), cmp.Compare(a.Attempt, b.Attempt), cmp.Compare(phase(a.Type), phase(b.Type)))
}

// StatusOf is the status an event leaves a registration in; "" for none.
func StatusOf(e Event) string {
	switch e.Type {
	case TypeAccepted, TypeRedriven:
		return StatusAccepted
	case TypeHeld:
		return StatusHeld
	case TypeRetryScheduled:
		return StatusRetrying
	case TypeDelivered:
		return StatusDelivered
	case TypeDeadLettered:
		return StatusDead
	case TypePurged:
		return StatusPurged
	case TypeAttempt:
		if e.Outcome == "retry" {
			return StatusRetrying
		}
		// A last attempt says nothing of its own: its delivered or
		// dead_lettered event, confirmed with it, does (with the time and
		// the reason).
	}
	return ""
}

// Fold returns what evs, the events of one registration in any order and
// possibly repeated, say about it. Status is that of the latest step of its
// life (by Redrive, Attempt, then phase; between equals, the one that came
// later in evs), so events arriving out of order cannot turn a delivered
// registration back into a retrying one.
func Fold(evs []Event) Registration {
	var r Registration
	if len(evs) == 0 {
		return r
	}
	r.ID = evs[0].ID
	evs = dedupe(evs)
	h := slices.Clone(evs)
	slices.SortStableFunc(h, func(a, b Event) int { return cmp.Or(Rank(a, b), a.At.Compare(b.At)) })
	var last Event
	for _, e := range evs {
		if StatusOf(e) != "" && (last.Type == "" || Rank(e, last) >= 0) {
			last = e
		}
		if e.AcceptedAt != nil && (r.AcceptedAt == nil || e.AcceptedAt.Before(*r.AcceptedAt)) {
			t := *e.AcceptedAt
			r.AcceptedAt = &t
		}
		if e.Type == TypeAccepted {
			if r.AcceptedAt == nil || e.At.Before(*r.AcceptedAt) {
				t := e.At
				r.AcceptedAt = &t
			}
			if e.Client != "" {
				r.Client = e.Client
			}
		}
		r.Redrives = max(r.Redrives, e.Redrive)
	}
	r.Status = StatusOf(last)
	if r.Status == "" {
		r.Status = StatusAccepted // only a last attempt so far: its outcome's event is on its way
	}
	seen := map[[2]int]bool{}
	for _, e := range h {
		switch e.Type {
		case TypeAttempt:
			k := [2]int{e.Redrive, e.Attempt}
			a := Attempt{Attempt: e.Attempt, Redrive: e.Redrive, At: e.At, Status: e.Status, Error: e.Error, Outcome: e.Outcome, Duplicate: seen[k], Redelivered: e.Redelivered}
			if e.DurationMS != nil {
				a.DurationMS = *e.DurationMS
			}
			seen[k] = true
			r.Attempts = append(r.Attempts, a)
		case TypeDelivered:
			if r.DeliveredAt == nil && r.Status == StatusDelivered {
				t := e.At
				r.DeliveredAt = &t
			}
		case TypeDeadLettered:
			if r.Status == StatusDead || r.Status == StatusPurged {
				t := e.At
				r.DeadLetteredAt, r.Reason = &t, e.Reason
			}
		}
	}
	if r.Status == StatusRetrying && last.Type == TypeRetryScheduled {
		r.NextAttemptAt = last.Due
	}
	if r.Attempts == nil {
		r.Attempts = []Attempt{}
	}
	r.History = h
	return r
}

// dedupe drops events stored twice: a move published again after a failed
// confirm publishes its events again, identical. An attempt made again has
// another time, and stays.
func dedupe(evs []Event) []Event {
	type key struct {
		typ              string
		redrive, attempt int
		at               int64
	}
	seen := make(map[key]bool, len(evs))
	out := evs[:0:0]
	for _, e := range evs {
		k := key{e.Type, e.Redrive, e.Attempt, e.At.UnixNano()}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
