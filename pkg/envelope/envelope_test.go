package envelope_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/envelope"
)

func delivered(p amqp.Publishing) amqp.Delivery {
	return amqp.Delivery{MessageId: p.MessageId, Headers: p.Headers, Body: p.Body, Timestamp: p.Timestamp,
		ContentType: p.ContentType, DeliveryMode: p.DeliveryMode}
}

func TestRetryThenDead_CarriesHistory(t *testing.T) {
	accepted := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	msg := envelope.New("id-1", []byte(`{"a":1}`), accepted)
	if msg.DeliveryMode != amqp.Persistent || msg.ContentType != "application/json" {
		t.Fatalf("new message not persistent JSON: %+v", msg)
	}
	first := accepted.Add(time.Second)
	r1 := envelope.Retry(delivered(msg), envelope.Attempt{Number: 1, At: first, Status: 500, Err: "boom"})
	r1.Headers["x-death"] = []any{amqp.Table{"reason": "expired", "count": int64(1)}}
	last := first.Add(time.Minute)
	dead := envelope.Dead(delivered(r1), envelope.Attempt{Number: 2, At: last, Status: 503, Err: "down"}, envelope.ReasonMaxAttempts, last)

	m := envelope.Read(delivered(dead))
	if m.ID != "id-1" || m.Attempts != 2 || m.LastStatus != 503 || m.LastError != "down" || m.Reason != envelope.ReasonMaxAttempts {
		t.Errorf("meta %+v", m)
	}
	if !m.FirstAttemptAt.Equal(first) || !m.LastAttemptAt.Equal(last) || !m.AcceptedAt.Equal(accepted) || !m.DeadAt.Equal(last) {
		t.Errorf("times: first %v last %v accepted %v dead %v", m.FirstAttemptAt, m.LastAttemptAt, m.AcceptedAt, m.DeadAt)
	}
	if _, ok := dead.Headers["x-death"]; ok {
		t.Error("x-death kept: it would grow with every retry")
	}
	if string(dead.Body) != `{"a":1}` || dead.Headers[envelope.HeaderMessageID] != "id-1" {
		t.Errorf("dead letter body %q id header %v", dead.Body, dead.Headers[envelope.HeaderMessageID])
	}
	if _, ok := msg.Headers[envelope.HeaderAttempts]; ok {
		t.Error("Retry changed the original's headers")
	}
}

func TestRead_BrokerDeadLetterIsRejectedByBroker(t *testing.T) {
	d := amqp.Delivery{Headers: amqp.Table{"x-death": []any{amqp.Table{"reason": "delivery_limit"}}}}
	if got := envelope.Read(d).Reason; got != envelope.ReasonRejectedByBroker {
		t.Errorf("reason %q, want %q", got, envelope.ReasonRejectedByBroker)
	}
}

func TestRead_AcceptsAnyIntegerEncoding(t *testing.T) {
	for _, v := range []any{int8(3), int16(3), int32(3), int64(3), uint8(3), "3"} {
		d := amqp.Delivery{Headers: amqp.Table{envelope.HeaderAttempts: v}}
		if got := envelope.Read(d).Attempts; got != 3 {
			t.Errorf("%T: attempts %d, want 3", v, got)
		}
	}
}

func TestTruncate_KeepsUTF8Whole(t *testing.T) {
	s := strings.Repeat("é", 600) // 1200 bytes
	got := envelope.Truncate(s, envelope.MaxErrorLen)
	if len(got) > envelope.MaxErrorLen || !utf8.ValidString(got) || len(got) < envelope.MaxErrorLen-1 {
		t.Errorf("truncated to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if envelope.Truncate("short", 10) != "short" {
		t.Error("short string changed")
	}
}

// The redrive count survives the forwarder's retries and death: Retry and
// Dead copy every header but the broker's x-death bookkeeping.
func TestRead_RedriveCountSurvivesRetryAndDeath(t *testing.T) {
	msg := envelope.New("id-1", []byte(`{}`), time.Now())
	msg.Headers[envelope.HeaderRedriveCount] = int32(2)
	r := envelope.Retry(delivered(msg), envelope.Attempt{Number: 1, At: time.Now(), Status: 503})
	dead := envelope.Dead(delivered(r), envelope.Attempt{Number: 2, At: time.Now(), Status: 503}, envelope.ReasonMaxAttempts, time.Now())
	if got := envelope.Read(delivered(dead)).RedriveCount; got != 2 {
		t.Errorf("redrive count %d after retry and death, want 2", got)
	}
}
