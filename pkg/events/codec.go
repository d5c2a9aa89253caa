package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is a hand-written JSON codec for Event: encoding/json's
// reflection was a measured CPU hot spot of both services. It is held to
// one rule: the result is always exactly what encoding/json gives.
//
//   - AppendEvent writes what json.Marshal writes, byte for byte: the
//     escaping below is encoding/json's (with its HTML escaping), and times
//     go through time.Time.AppendText, which MarshalJSON uses too.
//   - The decoder reads the JSON the encoder writes (known keys in any
//     order, strings without escapes, integers, booleans, null, whitespace
//     between tokens) and reports anything else as not understood: unknown
//     or repeated keys, escapes, fractions and exponents, invalid input.
//     Its callers (Parse, ParseMessage) then hand that event
//     or message to encoding/json, so they accept, reject and return what
//     it does.

// AppendEvent appends the JSON of e to dst and returns the extended slice:
// the bytes json.Marshal(e) returns. Where json.Marshal fails (a time whose
// year is outside 0–9999, or whose zone offset is 24 hours or more),
// AppendEvent returns dst unchanged.
func AppendEvent(dst []byte, e *Event) []byte {
	b, ok := appendEvent(dst, e)
	if !ok {
		return dst
	}
	return b
}

// appendEvent appends the JSON of e to dst; it reports false, with dst
// unchanged, where json.Marshal fails.
func appendEvent(dst []byte, e *Event) ([]byte, bool) {
	b := append(dst, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"at":`...)
	b, ok := appendTime(b, e.At)
	if !ok {
		return dst, false
	}
	b = appendStringField(b, `,"source":`, e.Source)
	if e.AcceptedAt != nil {
		b = append(b, `,"accepted_at":`...)
		if b, ok = appendTime(b, *e.AcceptedAt); !ok {
			return dst, false
		}
	}
	b = appendStringField(b, `,"client":`, e.Client)
	b = appendIntField(b, `,"redrive":`, int64(e.Redrive))
	b = appendIntField(b, `,"attempt":`, int64(e.Attempt))
	if e.DurationMS != nil {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, *e.DurationMS, 10)
	}
	b = appendIntField(b, `,"status":`, int64(e.Status))
	b = appendStringField(b, `,"error":`, e.Error)
	b = appendStringField(b, `,"outcome":`, e.Outcome)
	if e.Redelivered {
		b = append(b, `,"redelivered":true`...)
	}
	b = appendStringField(b, `,"tier":`, e.Tier)
	if e.Due != nil {
		b = append(b, `,"due":`...)
		if b, ok = appendTime(b, *e.Due); !ok {
			return dst, false
		}
	}
	b = appendStringField(b, `,"reason":`, e.Reason)
	return append(b, '}'), true
}

// appendMessage returns what json.Marshal(evs) returns: the JSON array of
// evs ("null" for a nil slice), or nil where json.Marshal fails.
func appendMessage(evs []Event) []byte {
	if evs == nil {
		return []byte("null")
	}
	const guess = 256 // bytes per event, a little above the usual
	b := make([]byte, 0, 2+guess*len(evs))
	b = append(b, '[')
	for i := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendEvent(b, &evs[i]); !ok {
			return nil
		}
	}
	return append(b, ']')
}

// appendStringField appends key and s, unless s is empty (omitempty).
func appendStringField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendIntField appends key and n, unless n is 0 (omitempty).
func appendIntField(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendTime appends t as time.Time.MarshalJSON writes it, or reports
// false where MarshalJSON fails (AppendText fails in the same cases).
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	out, err := t.AppendText(append(b, '"'))
	if err != nil {
		return b, false
	}
	return append(out, '"'), true
}

// htmlSafe holds the ASCII bytes encoding/json writes as they are (it
// escapes <, > and & for HTML by default).
var htmlSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it: \" \\ \b \f \n \r \t, \u00XX for other control bytes and
// for <, > and &, \ufffd for each byte of invalid UTF-8, and \u2028 and
// \u2029 (which break JSONP).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeEvent decodes b, one event object with optional whitespace around
// it, into e, a zero Event. It reports false (leaving e partly set) for
// input it does not fully understand.
func decodeEvent(b []byte, e *Event) bool {
	d := decoder{per: 1}
	end, ok := d.scanEvent(b, skipSpace(b, 0), e)
	return ok && skipSpace(b, end) == len(b)
}

// parseJSON is Parse by encoding/json.
func parseJSON(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("parse event: %w", err)
	}
	return e, nil
}

// parseMessageJSON is ParseMessage by encoding/json.
func parseMessageJSON(body []byte) ([]Event, error) {
	var evs []Event
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, fmt.Errorf("parse events: %w", err)
	}
	if err := checkEvents(evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// decodeMessage decodes body, a JSON array of event objects, appending
// them to dst. It reports false for input it does not fully understand. An
// empty array gives an empty, non-nil slice, as encoding/json does.
func decodeMessage(dst []Event, body []byte) (evs []Event, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	// The number of objects AppendEvent joined, as a capacity hint only: a
	// string may hold the separator too (hence the bound, a Message's most).
	n := min(bytes.Count(body, []byte("},{"))+1, maxBatch)
	d := decoder{per: n}
	evs = dst
	if cap(dst)-len(dst) < n {
		// Not slices.Grow: one allocation, even under -race. At least
		// doubled, as append would: a caller appending message after
		// message (the index, a batch at a time) must not copy its whole
		// slice for each (it cost the ingress 10 % of its CPU).
		evs = make([]Event, len(dst), max(len(dst)+n, 2*cap(dst)))
		copy(evs, dst)
	}
	if i < len(body) && body[i] == ']' {
		return evs, skipSpace(body, i+1) == len(body)
	}
	for {
		evs = append(evs, Event{})
		end, ok := d.scanEvent(body, i, &evs[len(evs)-1])
		if !ok {
			return nil, false
		}
		i = skipSpace(body, end)
		if i == len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case ']':
			return evs, skipSpace(body, i+1) == len(body)
		default:
			return nil, false
		}
	}
}

// A decoder reads events; it holds the values of their pointer fields in a
// few shared arrays rather than one allocation each.
type decoder struct {
	per   int // values an array holds (the events expected)
	times []time.Time
	ints  []int64
}

// newTime returns a pointer to a zero time.Time.
func (d *decoder) newTime() *time.Time {
	if len(d.times) == cap(d.times) {
		d.times = make([]time.Time, 0, d.per)
	}
	d.times = d.times[:len(d.times)+1]
	return &d.times[len(d.times)-1]
}

// newInt returns a pointer to a zero int64.
func (d *decoder) newInt() *int64 {
	if len(d.ints) == cap(d.ints) {
		d.ints = make([]int64, 0, d.per)
	}
	d.ints = d.ints[:len(d.ints)+1]
	return &d.ints[len(d.ints)-1]
}

// Bits of scanEvent's record of the keys it has read, one per field.
const (
	keyV = 1 << iota
	keyType
	keyID
	keyAt
	keySource
	keyAcceptedAt
	keyClient
	keyRedrive
	keyAttempt
	keyDurationMS
	keyStatus
	keyError
	keyOutcome
	keyRedelivered
	keyTier
	keyDue
	keyReason
)

// scanEvent decodes the object at b[i:] into e, a zero Event, and returns
// the index just past it. It reports false for anything but an object of
// Event's own keys, each at most once, with values of their own JSON type
// or null. A null leaves its zero field as it is, as encoding/json does
// (even for time.Time, whose UnmarshalJSON ignores null).
func (d *decoder) scanEvent(b []byte, i int, e *Event) (int, bool) {
	if i == len(b) || b[i] != '{' {
		return i, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	var seen uint32
	for {
		key, end, ok := scanString(b, i)
		if !ok {
			return i, false
		}
		i = skipSpace(b, end)
		if i == len(b) || b[i] != ':' {
			return i, false
		}
		i = skipSpace(b, i+1)
		bit := keyBit(key)
		if bit == 0 || seen&bit != 0 {
			return i, false // unknown or repeated
		}
		seen |= bit
		if bytes.HasPrefix(b[i:], []byte("null")) {
			i += len("null")
		} else if i, ok = d.scanField(b, i, bit, e); !ok {
			return i, false
		}
		i = skipSpace(b, i)
		if i == len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// keyBit returns the bit of key, or 0 for a key that is not Event's.
func keyBit(key []byte) uint32 {
	switch string(key) {
	case "v":
		return keyV
	case "type":
		return keyType
	case "id":
		return keyID
	case "at":
		return keyAt
	case "source":
		return keySource
	case "accepted_at":
		return keyAcceptedAt
	case "client":
		return keyClient
	case "redrive":
		return keyRedrive
	case "attempt":
		return keyAttempt
	case "duration_ms":
		return keyDurationMS
	case "status":
		return keyStatus
	case "error":
		return keyError
	case "outcome":
		return keyOutcome
	case "redelivered":
		return keyRedelivered
	case "tier":
		return keyTier
	case "due":
		return keyDue
	case "reason":
		return keyReason
	}
	return 0
}

// scanField decodes the value at b[i:] into e's field of bit, and returns
// the index just past the value.
func (d *decoder) scanField(b []byte, i int, bit uint32, e *Event) (end int, ok bool) {
	switch bit {
	case keyV:
		end, ok = scanInt(b, i, &e.V)
	case keyType:
		end, ok = scanText(b, i, &e.Type)
	case keyID:
		end, ok = scanText(b, i, &e.ID)
	case keyAt:
		end, ok = scanTime(b, i, &e.At)
	case keySource:
		end, ok = scanText(b, i, &e.Source)
	case keyAcceptedAt:
		e.AcceptedAt = d.newTime()
		end, ok = scanTime(b, i, e.AcceptedAt)
	case keyClient:
		end, ok = scanText(b, i, &e.Client)
	case keyRedrive:
		end, ok = scanInt(b, i, &e.Redrive)
	case keyAttempt:
		end, ok = scanInt(b, i, &e.Attempt)
	case keyDurationMS:
		e.DurationMS = d.newInt()
		end, *e.DurationMS, ok = scanInt64(b, i)
	case keyStatus:
		end, ok = scanInt(b, i, &e.Status)
	case keyError:
		end, ok = scanText(b, i, &e.Error)
	case keyOutcome:
		end, ok = scanText(b, i, &e.Outcome)
	case keyRedelivered:
		end, ok = scanBool(b, i, &e.Redelivered)
	case keyTier:
		end, ok = scanText(b, i, &e.Tier)
	case keyDue:
		e.Due = d.newTime()
		end, ok = scanTime(b, i, e.Due)
	case keyReason:
		end, ok = scanText(b, i, &e.Reason)
	}
	return end, ok
}

// scanString reads the JSON string at b[i:] and returns its contents
// (without the quotes) and the index just past it. It reports false for
// a string with an escape or invalid UTF-8 (which encoding/json replaces),
// and for a byte JSON does not allow in a string.
func scanString(b []byte, i int) (s []byte, end int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return nil, i, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			return s, j + 1, ascii || utf8.Valid(s)
		case c == '\\' || c < ' ':
			return nil, j, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, len(b), false
}

// scanText reads the JSON string at b[i:] into *s.
func scanText(b []byte, i int, s *string) (int, bool) {
	v, end, ok := scanString(b, i)
	if ok {
		*s = intern(v)
	}
	return end, ok
}

// intern returns v as a string, without allocating for the values of
// Type, Source and Outcome that relay writes.
func intern(v []byte) string {
	switch string(v) {
	case TypeAccepted:
		return TypeAccepted
	case TypeAttempt:
		return TypeAttempt
	case TypeRetryScheduled:
		return TypeRetryScheduled
	case TypeHeld:
		return TypeHeld
	case TypeDelivered:
		return TypeDelivered
	case TypeDeadLettered:
		return TypeDeadLettered
	case TypeRedriven:
		return TypeRedriven
	case TypePurged:
		return TypePurged
	case "ingress":
		return "ingress"
	case "forwarder":
		return "forwarder"
	case "relayctl":
		return "relayctl"
	case "retry":
		return "retry"
	case "dead-lettered":
		return "dead-lettered"
	}
	return string(v)
}

// scanTime reads the JSON string at b[i:] into *t with t.UnmarshalJSON,
// as encoding/json does; a time it rejects is reported as not understood,
// so that the caller's fallback returns encoding/json's error.
func scanTime(b []byte, i int, t *time.Time) (int, bool) {
	_, end, ok := scanString(b, i)
	if !ok || t.UnmarshalJSON(b[i:end]) != nil {
		return end, false
	}
	return end, true
}

// scanInt reads the JSON integer at b[i:] into *n.
func scanInt(b []byte, i int, n *int) (int, bool) {
	end, v, ok := scanInt64(b, i)
	*n = int(v)
	return end, ok && int64(*n) == v // as encoding/json, where int is 32 bits
}

// scanInt64 reads the JSON integer at b[i:]: an optional minus and digits
// without leading zeros. What follows it is the caller's to check, which
// rejects fractions and exponents (encoding/json fails on those for an
// integer field). Out of range, it reports false.
func scanInt64(b []byte, i int) (end int, n int64, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := j
	for j < len(b) && '0' <= b[j] && b[j] <= '9' {
		j++
	}
	switch {
	case j == digits:
		return j, 0, false
	case b[digits] == '0' && j > digits+1:
		return j, 0, false // a leading zero: not JSON
	case j-digits > 18: // may overflow: let strconv check
		n, err := strconv.ParseInt(string(b[i:j]), 10, 64)
		return j, n, err == nil
	}
	for _, c := range b[digits:j] {
		n = n*10 + int64(c-'0')
	}
	if digits > i {
		n = -n
	}
	return j, n, true
}

// scanBool reads the JSON true or false at b[i:] into *v.
func scanBool(b []byte, i int, v *bool) (int, bool) {
	switch {
	case bytes.HasPrefix(b[i:], []byte("true")):
		*v = true
		return i + len("true"), true
	case bytes.HasPrefix(b[i:], []byte("false")):
		*v = false
		return i + len("false"), true
	}
	return i, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// checkEvents reports the first event of evs that this relay cannot read:
// one of another version, or without id or type.
func checkEvents(evs []Event) error {
	for i := range evs {
		if err := checkEvent(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkEvent reports whether this relay can read e.
func checkEvent(e *Event) error {
	if e.V != Version {
		return fmt.Errorf("event version %d: this relay reads version %d", e.V, Version)
	}
	if e.ID == "" || e.Type == "" {
		return errors.New("event without id or type")
	}
	return nil
}
