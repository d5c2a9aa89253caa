package topology_test

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/topology"
)

// oldDeadQueue sets up what relay declared before its dead-letter queue was
// a quorum queue: the dead-letter exchange and a classic queue bound to it,
// holding n letters (ids <prefix>-0 ...) with headers.
func oldDeadQueue(t *testing.T, conn *amqp.Connection, topo *topology.Topology, n int) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(topo.DeadExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(topo.DeadQueue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(topo.DeadQueue, "", topo.DeadExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	publishLetters(t, ch, topo.DeadExchange, 0, n)
}

// publishLetters publishes letters from..to-1 to exchange, with confirms.
func publishLetters(t *testing.T, ch *amqp.Channel, exchange string, from, to int) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		dc, err := ch.PublishWithDeferredConfirm(exchange, "", true, false, amqp.Publishing{
			MessageId: fmt.Sprintf("letter-%d", i), DeliveryMode: amqp.Persistent, ContentType: "application/json",
			Headers: amqp.Table{"x-relay-reason": "max-attempts", "x-relay-attempts": int64(4)},
			Body:    []byte(fmt.Sprintf(`{"n":%d}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == to-1 && !dc.Wait() {
			t.Fatal("letters not confirmed")
		}
	}
}

// wantLetters takes every message of queue and checks they are letters
// 0..n-1 in order, headers intact.
func wantLetters(t *testing.T, conn *amqp.Connection, queue string, n int) {
	t.Helper()
	if got := brokertest.Depth(t, conn, queue); got != n {
		t.Fatalf("%s holds %d letters, want %d", queue, got, n)
	}
	for i := range n {
		d := brokertest.Get(t, conn, queue, 5*time.Second)
		if want := fmt.Sprintf("letter-%d", i); d.MessageId != want || d.Headers["x-relay-reason"] != "max-attempts" ||
			string(d.Body) != fmt.Sprintf(`{"n":%d}`, i) || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("letter %d: id %q headers %v body %s mode %d; want %s with its headers and body, persistent", i, d.MessageId, d.Headers, d.Body, d.DeliveryMode, want)
		}
	}
}

// isQuorum reports whether queue declares as relay's quorum dead-letter queue.
func isQuorum(t *testing.T, conn *amqp.Connection, queue string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-delivery-limit": int64(1_000_000_000)})
	return err == nil
}

func exists(t *testing.T, conn *amqp.Connection, queue string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	return err == nil
}

// An installation from before the quorum dead-letter queue: Declare moves
// every letter, in order and intact, into the new quorum queue under the
// same name, which then takes new dead letters; nothing is left behind.
func TestDeclare_MigratesAClassicDeadLetterQueue(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	topo := topology.New(cfg)
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	const n = 600 // more than one batch
	oldDeadQueue(t, conn, topo, n)
	if isQuorum(t, conn, topo.DeadQueue) {
		t.Fatal("set-up: the old dead-letter queue declares as a quorum queue")
	}

	if err := topo.Declare(conn); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if !isQuorum(t, conn, topo.DeadQueue) {
		t.Fatalf("%s is not a quorum queue after Declare", topo.DeadQueue)
	}
	for _, q := range []string{topo.DeadQueue + ".migrating", topo.DeadQueue + ".migration-lock"} {
		if exists(t, conn, q) {
			t.Errorf("%s is left behind", q)
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	publishLetters(t, ch, topo.DeadExchange, n, n+1) // a new dead letter
	wantLetters(t, conn, topo.DeadQueue, n+1)

	if err := topo.Declare(conn); err != nil { // and again: nothing to do
		t.Fatalf("Declare again: %v", err)
	}
}

// A migration cut short after the classic queue was gone: the holding queue
// has the letters, the quorum queue exists unbound. Declare finishes it.
func TestDeclare_FinishesAnInterruptedMigration(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	topo := topology.New(cfg)
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	holding := topo.DeadQueue + ".migrating"
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-delivery-limit": int64(1_000_000_000)}
	if err := ch.ExchangeDeclare(topo.DeadExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(holding, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(topo.DeadQueue, true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(holding, "", topo.DeadExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	publishLetters(t, ch, topo.DeadExchange, 0, 10)

	if err := topo.Declare(conn); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if exists(t, conn, holding) {
		t.Errorf("%s is left behind", holding)
	}
	publishLetters(t, ch, topo.DeadExchange, 10, 11) // reaches the dead-letter queue, once
	wantLetters(t, conn, topo.DeadQueue, 11)
}

// While another service holds the migration lock, Declare leaves the
// dead-letter queue alone and declares the rest.
func TestDeclare_LeavesTheMigrationToTheLockHolder(t *testing.T) {
	conn := brokertest.Dial(t)
	cfg := brokertest.Config(t)
	topo := topology.New(cfg)
	t.Cleanup(func() { brokertest.DeleteTopology(t, topo) })
	oldDeadQueue(t, conn, topo, 3)

	other := brokertest.Dial(t) // the service migrating
	lock, err := other.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.QueueDeclare(topo.DeadQueue+".migration-lock", false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := topo.Declare(conn); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if isQuorum(t, conn, topo.DeadQueue) || brokertest.Depth(t, conn, topo.DeadQueue) != 3 || brokertest.Depth(t, conn, topo.Queue) != 0 {
		t.Errorf("Declare touched the dead-letter queue under another's lock, or did not declare the main queue")
	}
	_ = other.Close() // the lock goes with its connection
	if err := topo.Declare(conn); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	wantLetters(t, conn, topo.DeadQueue, 3)
}
