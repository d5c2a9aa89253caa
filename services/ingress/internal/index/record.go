package index

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/railco/relay/pkg/events"
)

// The index stores a registration's events in a compact binary form, not
// as the stream's JSON: the id is the record's key, the version is the
// one this code reads, and numbers and times are varints. A delivered-at-once
// registration takes ~80 bytes instead of ~600, which is what a commit
// writes and what the file holds (the stream keeps the JSON).
//
// One event: a uvarint of flags saying which fields follow, then those
// fields in the order of the flags below. Strings are a uvarint length and
// the bytes; times are a varint of Unix seconds and a uvarint of
// nanoseconds (any time.Time survives, zone aside: times come back in
// UTC); numbers are varints.
const (
	fType = 1 << iota
	fAt
	fSource
	fAcceptedAt
	fClient
	fRedrive
	fAttempt
	fDurationMS
	fStatus
	fError
	fOutcome
	fRedelivered
	fTier
	fDue
	fReason
)

var errBadEvent = errors.New("malformed event record")

// appendEvent appends e's binary form to b.
func appendEvent(b []byte, e *events.Event) []byte {
	var flags uint64
	set := func(f uint64, ok bool) {
		if ok {
			flags |= f
		}
	}
	set(fType, e.Type != "")
	set(fAt, !e.At.IsZero())
	set(fSource, e.Source != "")
	set(fAcceptedAt, e.AcceptedAt != nil)
	set(fClient, e.Client != "")
	set(fRedrive, e.Redrive != 0)
	set(fAttempt, e.Attempt != 0)
	set(fDurationMS, e.DurationMS != nil)
	set(fStatus, e.Status != 0)
	set(fError, e.Error != "")
	set(fOutcome, e.Outcome != "")
	set(fRedelivered, e.Redelivered)
	set(fTier, e.Tier != "")
	set(fDue, e.Due != nil)
	set(fReason, e.Reason != "")
	b = binary.AppendUvarint(b, flags)
	str := func(f uint64, s string) {
		if flags&f != 0 {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	tm := func(f uint64, t time.Time) {
		if flags&f != 0 {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		}
	}
	num := func(f uint64, n int64) {
		if flags&f != 0 {
			b = binary.AppendVarint(b, n)
		}
	}
	str(fType, e.Type)
	tm(fAt, e.At)
	str(fSource, e.Source)
	if e.AcceptedAt != nil {
		tm(fAcceptedAt, *e.AcceptedAt)
	}
	str(fClient, e.Client)
	num(fRedrive, int64(e.Redrive))
	num(fAttempt, int64(e.Attempt))
	if e.DurationMS != nil {
		num(fDurationMS, *e.DurationMS)
	}
	num(fStatus, int64(e.Status))
	str(fError, e.Error)
	str(fOutcome, e.Outcome)
	str(fTier, e.Tier)
	if e.Due != nil {
		tm(fDue, *e.Due)
	}
	str(fReason, e.Reason)
	return b
}

// readEvent reads one event of registration id from b and returns the rest
// of b.
func readEvent(b []byte, id string) (events.Event, []byte, error) {
	e := events.Event{V: events.Version, ID: id}
	r := varintReader{b: b}
	flags := r.uvarint()
	str := func(f uint64) string {
		if flags&f == 0 {
			return ""
		}
		return string(r.bytes())
	}
	tm := func(f uint64) *time.Time {
		if flags&f == 0 {
			return nil
		}
		sec, nsec := r.varint(), r.uvarint()
		if nsec > math.MaxInt32 {
			r.bad = true
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		return &t
	}
	num := func(f uint64) int64 {
		if flags&f == 0 {
			return 0
		}
		return r.varint()
	}
	e.Type = str(fType)
	if t := tm(fAt); t != nil {
		e.At = *t
	}
	e.Source = str(fSource)
	e.AcceptedAt = tm(fAcceptedAt)
	e.Client = str(fClient)
	e.Redrive = int(num(fRedrive))
	e.Attempt = int(num(fAttempt))
	if flags&fDurationMS != 0 {
		d := num(fDurationMS)
		e.DurationMS = &d
	}
	e.Status = int(num(fStatus))
	e.Error = str(fError)
	e.Outcome = str(fOutcome)
	e.Redelivered = flags&fRedelivered != 0
	e.Tier = str(fTier)
	e.Due = tm(fDue)
	e.Reason = str(fReason)
	if r.bad {
		return e, nil, errBadEvent
	}
	return e, r.b, nil
}

// varintReader reads the index's binary forms: varints, bytes after their
// length, single bytes. Once a read finds b short or malformed, bad is set
// and every later read gives zero.
type varintReader struct {
	b   []byte
	bad bool
}

func (r *varintReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if r.bad || n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *varintReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.bad || n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *varintReader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *varintReader) byte() byte {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}
