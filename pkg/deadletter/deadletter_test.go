package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// letter describes a dead letter to bury.
type letter struct {
	id       string
	reason   string
	attempts int
	redrives int // x-relay-redrive-count it carries already
}

// bury dead-letters each message the way the forwarder does: envelope.Dead,
// published to the dead-letter exchange with confirms.
func bury(t testing.TB, conn *amqp.Connection, topo *topology.Topology, letters ...letter) {
	t.Helper()
	pub := broker.NewPublisher(2)
	if err := pub.Attach(conn); err != nil {
		t.Fatal(err)
	}
	defer pub.Detach()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	died := time.Now().Add(-time.Hour)
	errs := make(chan error, len(letters))
	slots := make(chan struct{}, 128) // keep the confirm pipeline full
	var wg sync.WaitGroup
	for _, l := range letters {
		msg := envelope.New(l.id, fmt.Appendf(nil, `{"registration":%q}`, l.id), died.Add(-time.Minute))
		if l.redrives > 0 {
			msg.Headers[envelope.HeaderRedriveCount] = int32(l.redrives)
		}
		d := amqp.Delivery{MessageId: msg.MessageId, ContentType: msg.ContentType, Timestamp: msg.Timestamp, Headers: msg.Headers, Body: msg.Body}
		dead := envelope.Dead(d, envelope.Attempt{Number: l.attempts, At: died, Status: 503, Err: "backend down: " + l.id}, l.reason, died)
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs <- pub.Publish(ctx, topo.DeadExchange, "", dead)
		})
		if len(letters) < 100 {
			wg.Wait() // small sets keep their order, which some tests check
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("bury: %v", err)
		}
	}
}

func maxAttempts(ids ...string) []letter {
	out := make([]letter, 0, len(ids))
	for _, id := range ids {
		out = append(out, letter{id: id, reason: envelope.ReasonMaxAttempts, attempts: 4})
	}
	return out
}

// drain takes every message from queue, acking it.
func drain(t testing.TB, conn *amqp.Connection, queue string) []amqp.Delivery {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true /* autoAck */)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func ids(letters []deadletter.Letter) []string {
	out := make([]string, 0, len(letters))
	for _, l := range letters {
		out = append(out, l.ID)
	}
	return out
}

func list(t *testing.T, conn *amqp.Connection, topo *topology.Topology, f deadletter.Filter) []deadletter.Letter {
	t.Helper()
	letters, err := deadletter.List(context.Background(), conn, topo, f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return letters
}

func setup(t *testing.T) (*amqp.Connection, *topology.Topology) {
	conn := brokertest.Dial(t)
	return conn, brokertest.Declare(t, conn, brokertest.Config(t))
}

// Browsing requeues: twenty lists later every letter is still there, in its
// place, byte for byte. (The quorum dead queue counts each requeue as a
// delivery; its delivery limit, a billion, is out of reach, where RabbitMQ
// 4's default of 20 would drop a letter at the twenty-first list.)
func TestList_TwentyTimesLosesNothing(t *testing.T) {
	conn, topo := setup(t)
	want := []string{"a", "b", "c", "d", "e"}
	bury(t, conn, topo, maxAttempts(want...)...)
	first := list(t, conn, topo, deadletter.Filter{})

	for i := range 20 {
		got := list(t, conn, topo, deadletter.Filter{})
		if !slices.Equal(ids(got), want) {
			t.Fatalf("list %d: ids %v, want %v", i+1, ids(got), want)
		}
		for j := range got {
			if !reflect.DeepEqual(got[j].Headers, first[j].Headers) || string(got[j].Body) != string(first[j].Body) {
				t.Fatalf("list %d: letter %s changed:\n%v %s\nwas\n%v %s", i+1, got[j].ID, got[j].Headers, got[j].Body, first[j].Headers, first[j].Body)
			}
		}
	}
	if n := brokertest.Depth(t, conn, topo.DeadQueue); n != len(want) {
		t.Errorf("dead queue holds %d after 20 lists, want %d", n, len(want))
	}
	l := first[2]
	if l.ID != "c" || l.Reason != envelope.ReasonMaxAttempts || l.Attempts != 4 || l.LastStatus != 503 ||
		l.LastError != "backend down: c" || l.ContentType != envelope.ContentType || string(l.Body) != `{"registration":"c"}` {
		t.Errorf("letter read as %+v", l)
	}
	if age := l.Age(time.Now()); age < time.Hour || age > time.Hour+time.Minute {
		t.Errorf("age %s, want about 1h", age)
	}
}

// Looking at the first few letters, again and again, moves none of them: a
// quorum queue puts requeued messages behind its ready ones, so every scan
// takes all the letters it started with before it puts any back.
func TestList_FirstFewManyTimesKeepsTheOrder(t *testing.T) {
	conn, topo := setup(t)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("l%02d", i))
	}
	bury(t, conn, topo, maxAttempts(want...)...)
	for i := range 25 {
		if got := ids(list(t, conn, topo, deadletter.Filter{Limit: 3})); !slices.Equal(got, want[:3]) {
			t.Fatalf("list %d of the first 3: %v, want %v", i+1, got, want[:3])
		}
	}
	if got := ids(list(t, conn, topo, deadletter.Filter{})); !slices.Equal(got, want) {
		t.Errorf("after 25 partial lists: %v, want %v", got, want)
	}
}

func TestList_Filter(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo,
		letter{id: "m1", reason: envelope.ReasonMaxAttempts, attempts: 4},
		letter{id: "n1", reason: envelope.ReasonNonRetryable, attempts: 1},
		letter{id: "m2", reason: envelope.ReasonMaxAttempts, attempts: 4, redrives: 3},
		letter{id: "r1", reason: envelope.ReasonRejectedByBroker, attempts: 2},
		letter{id: "m3", reason: envelope.ReasonMaxAttempts, attempts: 4, redrives: 1},
	)
	tests := []struct {
		name   string
		filter deadletter.Filter
		want   []string
	}{
		{"zero filter lists all", deadletter.Filter{}, []string{"m1", "n1", "m2", "r1", "m3"}},
		{"reason", deadletter.Filter{Reason: envelope.ReasonMaxAttempts}, []string{"m1", "m2", "m3"}},
		{"ids", deadletter.Filter{IDs: []string{"r1", "n1", "nope"}}, []string{"n1", "r1"}},
		{"limit", deadletter.Filter{Limit: 2}, []string{"m1", "n1"}},
		{"reason and limit", deadletter.Filter{Reason: envelope.ReasonMaxAttempts, Limit: 2}, []string{"m1", "m2"}},
		{"max redrives", deadletter.Filter{Reason: envelope.ReasonMaxAttempts, MaxRedrives: 3}, []string{"m1", "m3"}},
		{"nothing matches", deadletter.Filter{Reason: "no-such-reason"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(list(t, conn, topo, tt.filter)); !slices.Equal(got, tt.want) {
				t.Errorf("ids %v, want %v", got, tt.want)
			}
		})
	}
	if n := brokertest.Depth(t, conn, topo.DeadQueue); n != 5 {
		t.Errorf("dead queue holds %d after listing, want 5", n)
	}
}

func TestFind_ReturnsEveryCopy(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "dup", "b", "dup")...)
	got, err := deadletter.Find(context.Background(), conn, topo, "dup")
	if err != nil || !slices.Equal(ids(got), []string{"dup", "dup"}) {
		t.Errorf("Find = %v, %v; want both copies", ids(got), err)
	}
	if got, err := deadletter.Find(context.Background(), conn, topo); err != nil || got != nil {
		t.Errorf("Find without ids = %v, %v; want nothing", got, err)
	}
}

func TestCount(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, append(maxAttempts("a", "b", "c"), letter{id: "n", reason: envelope.ReasonNonRetryable, attempts: 1})...)
	ctx := context.Background()
	if n, err := deadletter.Count(ctx, conn, topo, deadletter.Filter{}); n != 4 || err != nil {
		t.Errorf("Count(all) = %d, %v; want 4", n, err)
	}
	if n, err := deadletter.Count(ctx, conn, topo, deadletter.Filter{Reason: envelope.ReasonNonRetryable}); n != 1 || err != nil {
		t.Errorf("Count(non-retryable) = %d, %v; want 1", n, err)
	}
}

func TestList_MissingQueueIsAnError(t *testing.T) {
	conn := brokertest.Dial(t)
	topo := topology.New(brokertest.Config(t)) // never declared
	_, err := deadletter.List(context.Background(), conn, topo, deadletter.Filter{})
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Errorf("List on a missing queue = %v, want a NOT_FOUND *amqp.Error", err)
	}
}

// A redriven letter lands in the main queue as a fresh message with its
// history kept; the letters not selected stay in the dead queue untouched.
func TestRedrive_ByIDsResetsAttemptsAndLeavesTheRest(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo,
		letter{id: "a", reason: envelope.ReasonMaxAttempts, attempts: 4},
		letter{id: "b", reason: envelope.ReasonMaxAttempts, attempts: 4, redrives: 1},
		letter{id: "c", reason: envelope.ReasonNonRetryable, attempts: 1},
	)
	before := list(t, conn, topo, deadletter.Filter{})

	res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{IDs: []string{"b", "c"}}, 0)
	if err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	if res.Scanned != 3 || res.Matched != 2 || res.Done != 2 || len(res.Missing) != 0 {
		t.Errorf("result %+v, want 3 scanned, 2 matched, 2 done", res)
	}

	main := drain(t, conn, topo.Queue)
	if len(main) != 2 {
		t.Fatalf("main queue holds %d messages, want 2", len(main))
	}
	b := main[0]
	m := envelope.Read(b)
	if b.MessageId != "b" || m.Attempts != 0 || m.RedriveCount != 2 || string(b.Body) != `{"registration":"b"}` ||
		b.DeliveryMode != amqp.Persistent || b.ContentType != envelope.ContentType || b.Timestamp.Unix() != before[1].AcceptedAt.Unix() {
		t.Errorf("redriven b: id %q meta %+v body %s mode %d", b.MessageId, m, b.Body, b.DeliveryMode)
	}
	for _, gone := range []string{envelope.HeaderAttempts, envelope.HeaderReason, envelope.HeaderDeadAt, envelope.HeaderLastError,
		envelope.HeaderLastStatus, envelope.HeaderFirstAttemptAt, envelope.HeaderLastAttemptAt, envelope.HeaderMessageID} {
		if v, ok := b.Headers[gone]; ok {
			t.Errorf("redriven copy keeps %s = %v", gone, v)
		}
	}
	history := map[string]any{
		envelope.HeaderPreviousAttempts:   int32(4),
		envelope.HeaderPreviousReason:     envelope.ReasonMaxAttempts,
		envelope.HeaderPreviousLastStatus: int32(503),
		envelope.HeaderPreviousLastError:  "backend down: b",
		envelope.HeaderPreviousDeadAt:     before[1].Headers[envelope.HeaderDeadAt],
		envelope.HeaderAcceptedAt:         before[1].Headers[envelope.HeaderAcceptedAt],
	}
	for k, want := range history {
		if got := b.Headers[k]; got != want {
			t.Errorf("redriven copy: %s = %v (%T), want %v", k, got, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(b.Headers[envelope.HeaderRedrivenAt])); err != nil {
		t.Errorf("%s: %v", envelope.HeaderRedrivenAt, err)
	}
	if c := envelope.Read(main[1]); main[1].MessageId != "c" || c.RedriveCount != 1 || main[1].Headers[envelope.HeaderPreviousReason] != envelope.ReasonNonRetryable {
		t.Errorf("redriven c: %+v %v", c, main[1].Headers)
	}

	rest := list(t, conn, topo, deadletter.Filter{})
	if len(rest) != 1 || rest[0].ID != "a" || !reflect.DeepEqual(rest[0].Headers, before[0].Headers) {
		t.Errorf("dead queue after redrive: %v, want a alone and unchanged", ids(rest))
	}
}

func TestRedrive_ByReasonSkipsLettersAtTheirLimit(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo,
		letter{id: "m1", reason: envelope.ReasonMaxAttempts, attempts: 4},
		letter{id: "poison", reason: envelope.ReasonMaxAttempts, attempts: 4, redrives: 3},
		letter{id: "n1", reason: envelope.ReasonNonRetryable, attempts: 1},
		letter{id: "m2", reason: envelope.ReasonMaxAttempts, attempts: 4, redrives: 2},
	)
	res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{Reason: envelope.ReasonMaxAttempts, MaxRedrives: 3}, 0)
	if err != nil || res.Done != 2 {
		t.Fatalf("Redrive = %+v, %v; want 2 done", res, err)
	}
	if got := ids(list(t, conn, topo, deadletter.Filter{})); !slices.Equal(got, []string{"poison", "n1"}) {
		t.Errorf("dead queue keeps %v, want [poison n1]", got)
	}
	if n := brokertest.Depth(t, conn, topo.Queue); n != 2 {
		t.Errorf("main queue holds %d, want 2", n)
	}
}

func TestRedrive_ReportsMissingIDs(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b")...)
	res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{IDs: []string{"x", "a", "y", "x"}}, 0)
	if err != nil || res.Done != 1 || !slices.Equal(res.Missing, []string{"x", "y"}) {
		t.Errorf("Redrive = %+v, %v; want 1 done and x, y missing", res, err)
	}
}

// When the copy cannot be stored, the letter stays where it is.
func TestRedrive_UnroutableCopyKeepsTheLetter(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b")...)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(topo.Queue, topo.Queue, topo.Exchange, nil); err != nil {
		t.Fatal(err)
	}
	ch.Close()

	res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{}, 0)
	if !errors.Is(err, broker.ErrUnroutable) || res.Done != 0 {
		t.Errorf("Redrive = %+v, %v; want ErrUnroutable and nothing done", res, err)
	}
	if got := ids(list(t, conn, topo, deadletter.Filter{})); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("dead queue holds %v after a failed redrive, want [a b]", got)
	}
}

// Losing the connection in the middle of a redrive may leave a letter in
// both queues, never in neither.
func TestRedrive_ConnectionLossLosesNothing(t *testing.T) {
	conn, topo := setup(t)
	const n = 200
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%03d", i))
	}
	bury(t, conn, topo, maxAttempts(want...)...)

	other := brokertest.Dial(t)
	done := make(chan error, 1)
	go func() {
		_, err := deadletter.Redrive(context.Background(), other, topo, deadletter.Filter{}, 400)
		done <- err
	}()
	brokertest.Eventually(t, 10*time.Second, "a redrive under way", func() bool { return brokertest.Depth(t, conn, topo.Queue) >= 20 })
	other.Close()
	if err := <-done; err == nil {
		t.Fatal("Redrive returned nil after losing its connection")
	}

	brokertest.Eventually(t, 5*time.Second, "every letter back in a queue", func() bool {
		return brokertest.Depth(t, conn, topo.Queue)+brokertest.Depth(t, conn, topo.DeadQueue) >= n
	})
	found := map[string]int{}
	for _, q := range []string{topo.Queue, topo.DeadQueue} {
		for _, d := range drain(t, conn, q) {
			found[d.MessageId]++
		}
	}
	for _, id := range want {
		if found[id] == 0 {
			t.Errorf("%s lost: in neither queue", id)
		}
	}
}

func TestRedrive_Rate(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b", "c", "d", "e")...)
	start := time.Now()
	res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{}, 20)
	if err != nil || res.Done != 5 {
		t.Fatalf("Redrive = %+v, %v", res, err)
	}
	// 20/s: the first at once, then one every 50ms.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("5 letters at 20/s took %s, want at least 200ms", took)
	}
}

func TestRedrive_CancelledStopsAndKeepsTheRest(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b", "c", "d", "e")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(120*time.Millisecond, cancel)
	res, err := deadletter.Redrive(ctx, conn, topo, deadletter.Filter{}, 10) // 1 now, 1 after 100ms, then cancelled
	if !errors.Is(err, context.Canceled) || res.Done == 0 || res.Done == 5 {
		t.Fatalf("Redrive = %+v, %v; want some done, then cancelled", res, err)
	}
	main, dead := brokertest.Depth(t, conn, topo.Queue), brokertest.Depth(t, conn, topo.DeadQueue)
	if main != res.Done || main+dead != 5 {
		t.Errorf("main %d + dead %d after %d redriven, want 5 in all", main, dead, res.Done)
	}
}

func TestPurge_ByIDs(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b", "c")...)
	res, err := deadletter.Purge(context.Background(), conn, topo, deadletter.Filter{IDs: []string{"c", "a", "zz"}})
	if err != nil || res.Done != 2 || !slices.Equal(res.Missing, []string{"zz"}) {
		t.Errorf("Purge = %+v, %v; want 2 done, zz missing", res, err)
	}
	if got := ids(list(t, conn, topo, deadletter.Filter{})); !slices.Equal(got, []string{"b"}) {
		t.Errorf("dead queue keeps %v, want [b]", got)
	}
	if n := brokertest.Depth(t, conn, topo.Queue); n != 0 {
		t.Errorf("purge sent %d letters to the main queue", n)
	}
}

func TestPurge_All(t *testing.T) {
	conn, topo := setup(t)
	bury(t, conn, topo, maxAttempts("a", "b", "c")...)
	res, err := deadletter.Purge(context.Background(), conn, topo, deadletter.Filter{})
	if err != nil || res.Done != 3 {
		t.Errorf("Purge = %+v, %v; want 3 done", res, err)
	}
	if n := brokertest.Depth(t, conn, topo.DeadQueue); n != 0 {
		t.Errorf("dead queue holds %d after purging all", n)
	}
}
