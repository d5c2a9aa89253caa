package deadletter

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/envelope"
)

// Letter is one message of the dead-letter queue.
type Letter struct {
	// Meta is what relay's headers say: ID, Reason, Attempts, LastStatus,
	// LastError, DeadAt, RedriveCount and the attempt times. ID is never
	// empty: without a message id it is the id the forwarder recorded, else
	// "sha256-" and the body's hash, the forwarder's Idempotency-Key for such
	// messages. DeadAt falls back to the broker's x-death time for letters
	// the broker dead-lettered itself.
	envelope.Meta
	ContentType string
	Headers     amqp.Table // every header, relay's and anyone else's
	Body        []byte
}

// Age is how long the letter has been dead at now, or zero when nothing says
// when it died.
func (l Letter) Age(now time.Time) time.Duration {
	if l.DeadAt.IsZero() {
		return 0
	}
	return now.Sub(l.DeadAt)
}

// newLetter reads d. The id is the AMQP message id, else the id the forwarder
// recorded when it dead-lettered it, else the hash of the body the forwarder
// uses as Idempotency-Key for messages without an id, so that an id taken from
// a forwarder log line finds its letter.
func newLetter(d amqp.Delivery) Letter {
	m := envelope.Read(d)
	if m.ID == "" {
		m.ID, _ = d.Headers[envelope.HeaderMessageID].(string)
	}
	if m.ID == "" {
		sum := sha256.Sum256(d.Body)
		m.ID = "sha256-" + hex.EncodeToString(sum[:16])
	}
	if m.DeadAt.IsZero() {
		m.DeadAt = lastDeath(d.Headers)
	}
	headers := maps.Clone(d.Headers)
	delete(headers, broker.HeaderPublishSeq) // publisher bookkeeping, not the letter's story
	delete(headers, deliveryCount)
	return Letter{Meta: m, ContentType: d.ContentType, Headers: headers, Body: d.Body}
}

// lastDeath is the time of the broker's most recent dead-lettering (x-death
// lists the most recent first), or zero.
func lastDeath(h amqp.Table) time.Time {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return time.Time{}
	}
	death, _ := deaths[0].(amqp.Table)
	t, _ := death["time"].(time.Time)
	return t
}

// Filter selects dead letters; a letter must pass every field that is set.
// The zero Filter selects every letter.
type Filter struct {
	// IDs selects letters with one of these ids; empty selects any id.
	// Duplicates of a letter (at-least-once delivery can make them) share
	// its id, and all of them are selected.
	IDs []string
	// Reason selects letters dead for this reason (envelope.Reason*); empty
	// selects any reason.
	Reason string
	// MaxRedrives, when positive, selects only letters redriven fewer times
	// than this: one redriven that often is a true poison message.
	MaxRedrives int
	// Limit, when positive, ends the operation after this many letters were
	// selected.
	Limit int
}

// all reports whether f selects every letter.
func (f Filter) all() bool {
	return len(f.IDs) == 0 && f.Reason == "" && f.MaxRedrives <= 0 && f.Limit <= 0
}

func (f Filter) match(l Letter) bool {
	return (len(f.IDs) == 0 || slices.Contains(f.IDs, l.ID)) &&
		(f.Reason == "" || l.Reason == f.Reason) &&
		(f.MaxRedrives <= 0 || l.RedriveCount < f.MaxRedrives)
}

// full reports whether the letters selected so far reach f's limit.
func (f Filter) full(selected int) bool { return f.Limit > 0 && selected >= f.Limit }

// missing returns the ids of f that none of seen carried.
func (f Filter) missing(seen map[string]bool) []string {
	var out []string
	for _, id := range f.IDs {
		if !seen[id] && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
