package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
)

// The codec's contract: AppendEvent writes what json.Marshal writes, and
// Parse and ParseMessage return what encoding/json returns
// (an error exactly when it errs). These references are the encoding/json
// code the codec replaced.

func parseJSON(b []byte) (events.Event, error) {
	var e events.Event
	err := json.Unmarshal(b, &e)
	return e, err
}

func checkJSON(e events.Event) error {
	if e.V != events.Version {
		return fmt.Errorf("event version %d", e.V)
	}
	if e.ID == "" || e.Type == "" {
		return errors.New("event without id or type")
	}
	return nil
}

func parseMessageJSON(body []byte) ([]events.Event, error) {
	var evs []events.Event
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, err
	}
	for _, e := range evs {
		if err := checkJSON(e); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

var (
	tNano  = time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.UTC)
	tWhole = time.Date(2026, 12, 5, 10, 0, 1, 0, time.UTC)
	tMilli = time.Date(2026, 12, 5, 10, 0, 2, 120000000, time.UTC)
	tParis = time.Date(2026, 7, 1, 12, 30, 0, 5000, time.FixedZone("CEST", 2*3600))
	tIndia = time.Date(2026, 7, 1, 12, 30, 0, 0, time.FixedZone("", 5*3600+1800))
	tWest  = time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(9*3600+30*60)))
	tYear0 = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	t9999  = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

func ptr[T any](v T) *T { return &v }

// fullEvent sets every field.
func fullEvent() events.Event {
	return events.Event{
		V: 1, Type: events.TypeAttempt, ID: "0193a6c4-00000042-7b21-9d3e-2f4c5b6a7d8e", At: tNano,
		Source: "forwarder", AcceptedAt: ptr(tWhole), Client: "railco",
		Redrive: 2, Attempt: 3, DurationMS: ptr(int64(1234)), Status: 503,
		Error:   `Post "http://catering:8080/register": dial tcp: connection refused`,
		Outcome: "retry", Redelivered: true, Tier: "relay.retry.30s", Due: ptr(tMilli),
		Reason: "max-attempts",
	}
}

// codecCases are events AppendEvent must write as json.Marshal does.
func codecCases() []struct {
	name string
	e    events.Event
} {
	with := func(f func(*events.Event)) events.Event {
		e := fullEvent()
		f(&e)
		return e
	}
	cases := []struct {
		name string
		e    events.Event
	}{
		{"every field", fullEvent()},
		{"no field", events.Event{}},
		{"required only", events.Event{V: 1, Type: events.TypeAccepted, ID: "r1", At: tNano}},
		{"negative numbers", with(func(e *events.Event) {
			e.V, e.Redrive, e.Attempt, e.Status, e.DurationMS = -1, -2, -3, -4, ptr(int64(-5))
		})},
		{"extreme numbers", with(func(e *events.Event) { e.V, e.Attempt, e.DurationMS = 1<<63-1, -1<<63, ptr(int64(-1<<63)) })},
		{"zero duration", with(func(e *events.Event) { e.DurationMS = ptr(int64(0)) })},
		{"whole seconds", with(func(e *events.Event) { e.At = tWhole })},
		{"milliseconds", with(func(e *events.Event) { e.At = tMilli })},
		{"zero time", with(func(e *events.Event) { e.At = time.Time{}; e.Due = &time.Time{} })},
		{"named zone offset", with(func(e *events.Event) { e.At = tParis })},
		{"half-hour offset", with(func(e *events.Event) { e.At, e.AcceptedAt = tIndia, ptr(tIndia) })},
		{"negative offset", with(func(e *events.Event) { e.Due = ptr(tWest) })},
		{"offset with seconds", with(func(e *events.Event) { e.At = tNano.In(time.FixedZone("LMT", 561)) })},
		{"offset of 23:59", with(func(e *events.Event) { e.At = tNano.In(time.FixedZone("", 24*3600-60)) })},
		{"local time", with(func(e *events.Event) { e.At = tNano.Local() })},
		{"monotonic reading", with(func(e *events.Event) { e.At = time.Now() })},
		{"year 0", with(func(e *events.Event) { e.At = tYear0 })},
		{"year 9999", with(func(e *events.Event) { e.At = t9999 })},
		{"quotes and backslashes", with(func(e *events.Event) { e.Error = `say "hi" \ C:\path\"` })},
		{"html", with(func(e *events.Event) { e.Reason = "<script>alert('&amp;')</script>" })},
		{"control characters", with(func(e *events.Event) { e.Error = "a\x00b\x01\b\f\n\r\t\x1f\x7fz" })},
		{"unicode", with(func(e *events.Event) { e.Client = "Zoë's café – 日本 😀" })},
		{"line separators", with(func(e *events.Event) { e.Error = "a\u2028b\u2029c\u202a" })},
		{"invalid utf-8", with(func(e *events.Event) { e.ID = "a\xffb\xc3(c\xe2\x82d\xed\xa0\x80e\xf4\x90\x80\x80" })},
		{"truncated rune at end", with(func(e *events.Event) { e.Tier = "tier\xe2\x82" })},
		{"replacement character", with(func(e *events.Event) { e.Reason = "\ufffd" })},
		{"long strings", with(func(e *events.Event) { e.Error, e.Reason = strings.Repeat("abc<", 1000), strings.Repeat("é", 3000) })},
		{"json in a string", with(func(e *events.Event) { e.Error = `},{"v":1}` })},
	}
	for _, typ := range []string{
		events.TypeAccepted, events.TypeAttempt, events.TypeRetryScheduled, events.TypeHeld,
		events.TypeDelivered, events.TypeDeadLettered, events.TypeRedriven, events.TypePurged,
	} {
		cases = append(cases, struct {
			name string
			e    events.Event
		}{"type " + typ, events.Event{V: 1, Type: typ, ID: "r1", At: tNano, Source: "relayctl", Outcome: "dead-lettered"}})
	}
	return cases
}

// unmarshalable are events json.Marshal fails on.
var unmarshalable = []events.Event{
	{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	{At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	{At: tNano.In(time.FixedZone("", 24*3600))},
	{At: tNano.In(time.FixedZone("", -25*3600))},
	{At: tNano, AcceptedAt: ptr(time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC))},
	{At: tNano, Due: ptr(tNano.In(time.FixedZone("", 100*3600)))},
}

func TestAppendEvent_WritesWhatJSONMarshalWrites(t *testing.T) {
	for _, c := range codecCases() {
		t.Run(c.name, func(t *testing.T) {
			checkAppend(t, c.e)
		})
	}
	for i, e := range unmarshalable {
		t.Run(fmt.Sprint("unmarshalable ", i), func(t *testing.T) {
			checkAppend(t, e)
		})
	}
}

// checkAppend checks AppendEvent and Message against json.Marshal, and
// Parse of the result against json.Unmarshal.
func checkAppend(t *testing.T, e events.Event) {
	t.Helper()
	want, err := json.Marshal(&e)
	prefix := []byte("prefix")
	got := events.AppendEvent(prefix[:len(prefix):len(prefix)], &e)
	if err != nil {
		if string(got) != "prefix" {
			t.Fatalf("json.Marshal fails (%v), AppendEvent wrote %q", err, got)
		}
	} else if !bytes.Equal(got, append(prefix, want...)) {
		t.Fatalf("AppendEvent:\n got %s\nwant prefix%s", got, want)
	}

	evs := []events.Event{e, e}
	evs[1].V = 7
	body := events.Message(evs).Body // sets V where it is 0
	wantBody, _ := json.Marshal(evs)
	if !bytes.Equal(body, wantBody) {
		t.Fatalf("Message body:\n got %s\nwant %s", body, wantBody)
	}

	if err == nil {
		checkParse(t, want)
		checkParse(t, wantBody)
		checkParse(t, []byte(" [ "+string(want)+" ] "))
	}
}

func TestMessage_BodyIsJSONMarshalOfEvents(t *testing.T) {
	for _, evs := range [][]events.Event{nil, {}, {fullEvent()}, realisticEvents(20), {fullEvent(), unmarshalable[0]}} {
		got := events.Message(evs).Body // sets V where it is 0
		want, _ := json.Marshal(evs)
		if !bytes.Equal(got, want) {
			t.Errorf("Message(%d events) body:\n got %s\nwant %s", len(evs), got, want)
		}
	}
}

// parseCases are inputs for Parse and ParseMessage: the
// codec's own JSON, and what it must leave to encoding/json.
var parseCases = []string{
	``,
	` `,
	`null`,
	`[]`,
	` [ ] `,
	`[null]`,
	`{}`,
	` { } `,
	`{"v":1,"type":"accepted","id":"r1","at":"2026-12-05T10:00:00Z"}`,
	"\t{ \"v\" : 1 ,\r\n\"type\":\"accepted\" , \"id\":\"r1\",\"at\":\"2026-12-05T10:00:00.5+01:00\" }\n",
	`{"id":"r1","at":"2026-12-05T10:00:00.123456789-09:30","type":"held","v":1}`,
	`{"v":1,"type":"accepted","id":"r1","at":"2026-12-05T10:00:00Z",}`,
	`{"v":1,"type":"accepted","id":"r1","at":"2026-12-05T10:00:00Z"`,
	`{"v":1,"type":"accepted","id":"r1","at":"2026-12-05T10:00:00Z"} x`,
	`{"v":1,"type":"accepted","id":"r1","at":"2026-12-05T10:00:00Z"}{}`,
	// Nulls, which leave the field as it is.
	`{"v":null,"type":null,"id":null,"at":null,"accepted_at":null,"duration_ms":null,"redelivered":null,"due":null}`,
	`{"v":1,"type":"accepted","id":"r1","at":"null"}`,
	`{"v":1,"type":"accepted","id":"r1","at":nul}`,
	`{"v":1,"type":"accepted","id":"r1","at":nullx}`,
	// Keys.
	`{"v":1,"V":2}`,
	`{"V":1,"TYPE":"accepted","Id":"r1"}`,
	`{"v":1,"v":2}`,
	`{"id":"a","id":"b"}`,
	`{"due":"2026-12-05T10:00:00Z","due":null}`,
	`{"due":null,"due":"2026-12-05T10:00:00Z"}`,
	`{"v":1,"unknown":{"a":[1,2,{"b":null}]},"id":"r1","type":"x"}`,
	`{"v":1,"id":"r1","type":"x","extra":"y"}`,
	`{"\u0076":1,"id":"r1","type":"x"}`,
	"{\"\xff\":1}",
	`{"redſrive":1}`,
	`{"v":1,"type":"a","id":"r1","ſource":"k"}`,
	// Strings.
	`{"v":1,"type":"accepted","id":"r\"1"}`,
	`{"v":1,"type":"accepted","id":"r\u00e91\ud83d\ude00"}`,
	`{"v":1,"type":"accepted","id":"\ud800"}`,
	`{"v":1,"type":"accepted","id":"r\/1"}`,
	`{"v":1,"type":"accepted","id":"r\x1"}`,
	"{\"v\":1,\"type\":\"accepted\",\"id\":\"r\x01\"}",
	"{\"v\":1,\"type\":\"accepted\",\"id\":\"r\x7f\"}",
	"{\"v\":1,\"type\":\"accepted\",\"id\":\"caf\xc3\xa9 \xe2\x80\xa8\"}",
	"{\"v\":1,\"type\":\"accepted\",\"id\":\"r\xff1\"}",
	"{\"v\":1,\"type\":\"accepted\",\"id\":\"\xed\xa0\x80\"}",
	`{"v":1,"type":"accepted","id":"r1`,
	`{"v":1,"type":"accepted","id":1}`,
	`{"v":1,"type":["accepted"],"id":"r1"}`,
	// Numbers.
	`{"v":1.0}`,
	`{"v":1e0}`,
	`{"v":1E+0}`,
	`{"v":-0}`,
	`{"v":-}`,
	`{"v":01}`,
	`{"v":00}`,
	`{"v":+1}`,
	`{"v":"1"}`,
	`{"v":true}`,
	`{"v":9223372036854775807,"attempt":-9223372036854775808}`,
	`{"v":9223372036854775808}`,
	`{"v":-9223372036854775809}`,
	`{"duration_ms":99999999999999999999999}`,
	`{"duration_ms":123456789012345678}`,
	`{"duration_ms":1234567890123456789}`,
	`{"status":200.5}`,
	// Booleans.
	`{"redelivered":true}`,
	`{"redelivered":false}`,
	`{"redelivered":True}`,
	`{"redelivered":truex}`,
	`{"redelivered":1}`,
	`{"redelivered":"true"}`,
	// Times.
	`{"at":"2026-12-05T10:00:00"}`,
	`{"at":"2026-12-05 10:00:00Z"}`,
	`{"at":"2026-12-05T10:00:00,5Z"}`,
	`{"at":"2026-12-05T10:00:00.Z"}`,
	`{"at":"2026-12-05T10:00:00.1234567891Z"}`,
	`{"at":"2026-12-05T10:00:00+24:00"}`,
	`{"at":"2026-12-05T10:00:00+23:60"}`,
	`{"at":"2026-12-05T10:00:00z"}`,
	`{"at":"2026-02-30T10:00:00Z"}`,
	`{"at":"0000-01-01T00:00:00Z"}`,
	`{"at":"2026-12-05T1:00:00Z"}`,
	`{"at":"2026-12-05T10:00:00\u005a"}`,
	`{"at":""}`,
	`{"at":1}`,
	`{"accepted_at":"2026-12-05T10:00:00-00:00","due":"2026-12-05T10:00:00+00:00"}`,
	// Arrays.
	`[{"v":1,"type":"accepted","id":"r1"},{"v":1,"type":"accepted","id":"r2"}]`,
	`[{"v":1,"type":"accepted","id":"r1"} , {"v":2,"type":"accepted","id":"r2"}]`,
	`[{"v":1,"type":"accepted","id":"r1"},{"v":1,"type":"accepted"}]`,
	`[{"v":1,"type":"accepted","id":"r1"},]`,
	`[{"v":1,"type":"accepted","id":"r1"}`,
	`[{"v":1,"type":"accepted","id":"r1"}]]`,
	`[{"v":1,"type":"accepted","id":"r1"},null]`,
	`[{"v":1,"type":"accepted","id":"r1"},1]`,
	`[{"v":1,"type":"accepted","id":"r1"},{"v":1,"type":"accepted","id":"r\"2"}]`,
	`[{"v":1,"type":"accepted","id":"r1","x":[]}, {"v":1,"type":"accepted","id":"r2"}]`,
	`[ [ ] ]`,
	`[,]`,
	`{"v":1,"type":"accepted","id":"r1"}`,
}

func TestParse_ReturnsWhatEncodingJSONReturns(t *testing.T) {
	for _, c := range parseCases {
		t.Run(c, func(t *testing.T) {
			checkParse(t, []byte(c))
			checkParse(t, []byte("["+c+"]"))
		})
	}
}

// checkParse checks Parse and ParseMessage of b against
// encoding/json.
func checkParse(t *testing.T, b []byte) {
	t.Helper()
	in := bytes.Clone(b)

	got, err := events.Parse(b)
	want, wantErr := parseJSON(b)
	if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(%q) = %+v, %v\nencoding/json: %+v, %v", b, got, err, want, wantErr)
	}

	evs, err := events.ParseMessage(b)
	wantEvs, wantErr := parseMessageJSON(b)
	if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(evs, wantEvs) {
		t.Fatalf("ParseMessage(%q) = %+v, %v\nencoding/json: %+v, %v", b, evs, err, wantEvs, wantErr)
	}

	// Appended after an event already there: that one stays, and an error
	// leaves dst as it was.
	first := events.Event{V: events.Version, Type: events.TypeAccepted, ID: "first"}
	dst := append(make([]events.Event, 0, 1), first)
	got2, err := events.AppendMessageEvents(dst, b)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("AppendMessageEvents(dst, %q): error %v, encoding/json's %v", b, err, wantErr)
	case err != nil && (len(got2) != 1 || got2[0] != first):
		t.Fatalf("AppendMessageEvents(dst, %q) failed and returned %+v, not dst", b, got2)
	case err == nil && (len(got2) != 1+len(wantEvs) || got2[0] != first || (len(wantEvs) > 0 && !reflect.DeepEqual(got2[1:], wantEvs))):
		t.Fatalf("AppendMessageEvents(dst, %q) = %+v, want dst and %+v", b, got2, wantEvs)
	}

	if !bytes.Equal(b, in) {
		t.Fatalf("the input changed: %q, was %q", b, in)
	}
}

func TestParseMessage_TakesTheFastPathForItsOwnJSON(t *testing.T) {
	body := events.Message(realisticEvents(20)).Body
	// The result slice, two arrays for the pointer fields, and the strings
	// it does not intern (7 clients, 20 ids); encoding/json allocates 106
	// times.
	const most = 1 + 2 + 7 + 20
	if n := testing.AllocsPerRun(20, func() {
		if _, err := events.ParseMessage(body); err != nil {
			t.Fatal(err)
		}
	}); n > most {
		t.Errorf("ParseMessage of 20 events: %v allocations, want at most %d", n, most)
	}
	e := realisticEvents(2)[1]
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(20, func() { buf = events.AppendEvent(buf[:0], &e) }); n > 0 {
		t.Errorf("AppendEvent into a large enough buffer: %v allocations, want 0", n)
	}
}

func TestAppendMessageEvents_GrowsLikeAppend(t *testing.T) {
	// Message after message appended to one slice (the index's batch):
	// the slice grows geometrically, so the events are copied a bounded
	// number of times, not once per message.
	const messages, per = 200, 20
	body := events.Message(realisticEvents(per)).Body
	var evs []events.Event
	grew := 0
	for range messages {
		before := cap(evs)
		var err error
		if evs, err = events.AppendMessageEvents(evs, body); err != nil {
			t.Fatal(err)
		}
		if cap(evs) != before {
			grew++
		}
	}
	if len(evs) != messages*per {
		t.Fatalf("%d events, want %d", len(evs), messages*per)
	}
	// Doubling from 20 to 4,000 events: 9 new arrays (one per message was 200).
	if most := 10; grew > most {
		t.Errorf("appending %d messages reallocated the slice %d times, want at most %d", messages, grew, most)
	}
}

// FuzzAppendEvent checks AppendEvent and Message against json.Marshal, and
// Parse of what they write against json.Unmarshal, for events made of
// fuzzed fields.
func FuzzAppendEvent(f *testing.F) {
	f.Add(1, "attempt", "0193a6c4-00000042-7b21-9d3e-2f4c5b6a7d8e", int64(1796464800), int64(123456789), 0, "forwarder", "railco",
		2, 3, int64(1234), 503, `Post "http://x": refused`, "retry", true, "relay.retry.30s", "max-attempts", uint8(0xff), int64(-60))
	f.Add(0, "<&>", "a\xffb\u2028", int64(-62135596800), int64(0), 3600, "", "\x00\t\n", 0, 0, int64(0), 0, "", "", false, "", "", uint8(0), int64(0))
	f.Add(7, "", "", int64(253402300799), int64(999999999), -34200, "é", "", -1, -1, int64(-1), -1, "\\", "\"", false, "", "\u2029", uint8(3), int64(1))
	f.Fuzz(func(t *testing.T, v int, typ, id string, sec, nsec int64, offset int, source, client string,
		redrive, attempt int, dur int64, status int, errStr, outcome string, redelivered bool, tier, reason string,
		ptrs uint8, delta int64) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		if ptrs&8 != 0 {
			at = at.UTC()
		}
		e := events.Event{
			V: v, Type: typ, ID: id, At: at, Source: source, Client: client,
			Redrive: redrive, Attempt: attempt, Status: status, Error: errStr, Outcome: outcome,
			Redelivered: redelivered, Tier: tier, Reason: reason,
		}
		if ptrs&1 != 0 {
			e.AcceptedAt = ptr(at.Add(time.Duration(delta)))
		}
		if ptrs&2 != 0 {
			e.DurationMS = &dur
		}
		if ptrs&4 != 0 {
			e.Due = ptr(time.Unix(delta, 0).UTC())
		}
		checkAppend(t, e)
	})
}

// FuzzParse checks Parse and ParseMessage against
// encoding/json for any input.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c))
	}
	for _, c := range codecCases() {
		b, _ := json.Marshal(c.e)
		f.Add(b)
	}
	f.Add(events.Message(realisticEvents(3)).Body)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

// realisticEvents returns n events as the services publish them: a
// registration accepted, attempted and delivered, then the next.
func realisticEvents(n int) []events.Event {
	accepted := time.Date(2026, 12, 5, 10, 0, 0, 417_203_911, time.UTC)
	evs := make([]events.Event, 0, n)
	for i := 0; len(evs) < n; i++ {
		id := fmt.Sprintf("0193a6c4-%08x-7b21-9d3e-2f4c5b6a7d8e", 0x42+i)
		at := accepted.Add(time.Duration(i) * 1_733_117 * time.Nanosecond)
		sent := at.Add(3_214_007 * time.Nanosecond)
		done := sent.Add(41 * time.Millisecond)
		evs = append(evs,
			events.Event{V: 1, Type: events.TypeAccepted, ID: id, At: at, Source: "ingress", Client: "railco-web"},
			events.Event{
				V: 1, Type: events.TypeAttempt, ID: id, At: done, Source: "forwarder", AcceptedAt: ptr(at),
				Attempt: 1, DurationMS: events.Ms(done.Sub(sent)), Status: 201, Outcome: "delivered",
			},
			events.Event{V: 1, Type: events.TypeDelivered, ID: id, At: done, Source: "forwarder", AcceptedAt: ptr(at), Attempt: 1},
		)
	}
	return evs[:n]
}

func BenchmarkAppendEvent(b *testing.B) {
	evs := realisticEvents(20)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			buf = events.AppendEvent(buf[:0], &evs[i])
		}
	}
	b.SetBytes(int64(len(events.Message(evs).Body)))
}

func BenchmarkJSONMarshalEvent(b *testing.B) {
	evs := realisticEvents(20)
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			if _, err := json.Marshal(&evs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(events.Message(evs).Body)))
}

func BenchmarkMessage(b *testing.B) {
	evs := realisticEvents(20)
	b.ReportAllocs()
	for b.Loop() {
		events.Message(evs)
	}
}

func BenchmarkJSONMarshalMessage(b *testing.B) {
	evs := realisticEvents(20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(evs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMessage(b *testing.B) {
	body := events.Message(realisticEvents(20)).Body
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.ParseMessage(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONParseMessage(b *testing.B) {
	body := events.Message(realisticEvents(20)).Body
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseMessageJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw := events.AppendEvent(nil, &realisticEvents(2)[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONUnmarshalEvent(b *testing.B) {
	raw := events.AppendEvent(nil, &realisticEvents(2)[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseJSON(raw); err != nil {
			b.Fatal(err)
		}
	}
}
